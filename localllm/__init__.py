"""localllm: run open LLMs on your own machine, offline once a model is on disk."""

__version__ = "0.1.0"
