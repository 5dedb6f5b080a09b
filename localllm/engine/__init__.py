"""Inference engines. Import the llama.cpp engine from localllm.engine.llama when needed."""

from localllm.engine.base import (
    BuildInfo,
    Engine,
    Event,
    Finished,
    GenerationStats,
    LoadOptions,
    LoadPlan,
    SamplingParams,
    Token,
)

__all__ = [
    "BuildInfo",
    "Engine",
    "Event",
    "Finished",
    "GenerationStats",
    "LoadOptions",
    "LoadPlan",
    "SamplingParams",
    "Token",
]
