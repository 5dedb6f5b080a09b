"""Inference engines. Import the llama.cpp engine from localllm.engine.llama when needed."""

from localllm.engine.base import (
    BuildInfo,
    Engine,
    EngineFacts,
    Event,
    Finished,
    GenerationStats,
    Generator,
    LoadOptions,
    LoadPlan,
    SamplingParams,
    Token,
    Tokenizer,
)

__all__ = [
    "BuildInfo",
    "Engine",
    "EngineFacts",
    "Event",
    "Finished",
    "GenerationStats",
    "Generator",
    "LoadOptions",
    "LoadPlan",
    "SamplingParams",
    "Token",
    "Tokenizer",
]
