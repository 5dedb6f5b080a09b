"""One module per model family, registered by its Hugging Face architecture name."""

from __future__ import annotations

from quantize.arch import gemma3, llama, phi3, qwen  # noqa: F401  (they register themselves)
from quantize.arch.base import Architecture, architecture_for, registered, supported_names

__all__ = ["Architecture", "architecture_for", "registered", "supported_names"]
