"""Phi-3 / Phi-3.5 / Phi-4-mini: fused qkv and gate+up projections, partial rotary.

The fused tensors go into GGUF as they are (llama.cpp splits them at run
time). Long-context "longrope" checkpoints carry per-frequency factors, which
become the rope_factors_long/short tensors.
"""

from __future__ import annotations

import math
from typing import Any

import gguf
import numpy as np

from quantize.arch.base import DECODER_LAYOUT, Architecture, register, rope_value


@register
class Phi3(Architecture):
    hf_architectures = ("Phi3ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.PHI3
    layout = {
        **{k: v for k, v in DECODER_LAYOUT.items() if k not in ("attn_q", "attn_k", "attn_v")},
        "attn_qkv": "model.layers.{bid}.self_attn.qkv_proj",
        "ffn_up": "model.layers.{bid}.mlp.gate_up_proj",
    }

    rope_types = frozenset({"default", "longrope", "su"})

    @property
    def rope_dims(self) -> int:
        # absent, transformers rotates the whole head (Phi3Config's default of 1.0)
        return int(self.head_dim * float(self.rope.get("partial_rotary_factor") or 1.0))

    def write_hparams(self, writer: gguf.GGUFWriter) -> None:
        super().write_hparams(writer)
        writer.add_rope_dimension_count(self.rope_dims)
        original = self.rope.get("original_max_position_embeddings")
        if original and self.rope["rope_type"] != "default":
            writer.add_rope_scaling_orig_ctx_len(int(original))
            scale = int(self.get("max_position_embeddings")) / int(original)
            attn_factor = 1.0 if scale <= 1 else math.sqrt(1 + math.log(scale) / math.log(original))
            writer.add_rope_scaling_attn_factors(attn_factor)
        if self.get("sliding_window"):
            writer.add_sliding_window(int(self.config["sliding_window"]))

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = super().expected_shapes()
        rows, cols = shapes["ffn_up"]
        return {**shapes, "ffn_up": (2 * rows, cols)}

    def extra_tensors(self) -> dict[str, np.ndarray]:
        rope = self.rope
        if not rope.get("long_factor"):
            return {}
        return {
            "rope_factors_long.weight": np.asarray(rope["long_factor"], dtype=np.float32),
            "rope_factors_short.weight": np.asarray(
                rope_value(rope, "short_factor"), dtype=np.float32
            ),
        }

    @classmethod
    def config_from_gguf(cls, kv: dict[str, Any], has_output: bool) -> dict:
        config = super().config_from_gguf(kv, has_output)
        head_dim = config["hidden_size"] // config["num_attention_heads"]
        rope_dims = int(kv.get("phi3.rope.dimension_count", head_dim))
        config.update(hidden_act="silu", partial_rotary_factor=rope_dims / head_dim)
        return config
