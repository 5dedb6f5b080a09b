"""Qwen2 / Qwen2.5 (q/k/v biases) and Qwen3 (per-head q/k norms, explicit head size).

Both store rotary halves the way llama.cpp's NEOX rope reads them, so no
permutation is needed.
"""

from __future__ import annotations

from typing import Any

import gguf

from quantize.arch.base import DECODER_LAYOUT, Architecture, register


@register
class Qwen2(Architecture):
    hf_architectures = ("Qwen2ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.QWEN2


@register
class Qwen3(Architecture):
    hf_architectures = ("Qwen3ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.QWEN3
    layout = {
        **DECODER_LAYOUT,
        "attn_q_norm": "model.layers.{bid}.self_attn.q_norm",
        "attn_k_norm": "model.layers.{bid}.self_attn.k_norm",
    }

    @classmethod
    def config_from_gguf(cls, kv: dict[str, Any], has_output: bool) -> dict:
        return {**super().config_from_gguf(kv, has_output), "hidden_act": "silu"}
