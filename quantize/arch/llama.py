"""Llama 2/3, Mistral and SmolLM: the llama layout.

llama.cpp applies rotary embeddings to interleaved pairs, while Hugging Face
checkpoints store q/k projections with the two halves of each head split, so
their rows are permuted on the way in (and back out for the exporter).
Llama 3.1+ "llama3" rope scaling becomes a rope_freqs tensor.
"""

from __future__ import annotations

import math
from typing import Any

import gguf
import numpy as np

from quantize.arch.base import Architecture, register, rope_parameters, rope_value


def permute_rows(values: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face head layout [half0 | half1] -> llama.cpp's interleaved pairs."""
    rows = values.shape[0]
    return (
        values.reshape(n_head, 2, rows // n_head // 2, *values.shape[1:])
        .swapaxes(1, 2)
        .reshape(values.shape)
    )


def unpermute_rows(values: np.ndarray, n_head: int) -> np.ndarray:
    rows = values.shape[0]
    return (
        values.reshape(n_head, rows // n_head // 2, 2, *values.shape[1:])
        .swapaxes(1, 2)
        .reshape(values.shape)
    )


def llama3_rope_factors(config: dict, head_dim: int) -> np.ndarray | None:
    """Per-frequency divisors for Llama 3.1+ long-context rope scaling."""
    rope = rope_parameters(config)
    if rope["rope_type"] != "llama3":
        return None
    # transformers requires all of these for llama3; a missing one is an error, not a guess
    base, factor, low, high, original = (
        float(rope_value(rope, key))
        for key in ("rope_theta", "factor", "low_freq_factor", "high_freq_factor",
                    "original_max_position_embeddings")
    )  # fmt: skip
    freqs = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < original / high:
            factors.append(1.0)
        elif wavelen > original / low:
            factors.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            factors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


@register
class Llama(Architecture):
    hf_architectures = ("LlamaForCausalLM", "MistralForCausalLM")
    gguf_arch = gguf.MODEL_ARCH.LLAMA
    rope_types = Architecture.rope_types | {"llama3"}

    def write_hparams(self, writer: gguf.GGUFWriter) -> None:
        super().write_hparams(writer)
        writer.add_rope_dimension_count(self.head_dim)

    def _heads_for(self, name: str) -> int | None:
        if ".attn_q." in name:
            return self.n_head
        if ".attn_k." in name:
            return self.n_head_kv
        return None

    def to_gguf(self, name: str, values: np.ndarray) -> np.ndarray:
        heads = self._heads_for(name)
        return permute_rows(values, heads) if heads else values

    def from_gguf(self, name: str, values: np.ndarray) -> np.ndarray:
        heads = self._heads_for(name)
        return unpermute_rows(values, heads) if heads else values

    def extra_tensors(self) -> dict[str, np.ndarray]:
        factors = llama3_rope_factors(self.config, self.head_dim)
        return {} if factors is None else {"rope_freqs.weight": factors}

    @classmethod
    def config_from_gguf(cls, kv: dict[str, Any], has_output: bool) -> dict:
        config = super().config_from_gguf(kv, has_output)
        config["hidden_act"] = "silu"
        return config
