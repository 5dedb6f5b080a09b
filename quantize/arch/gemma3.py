"""Gemma 3 text models (270M and the text-only checkpoints).

Hugging Face stores Gemma's RMSNorm weights as offsets from one (the layer
multiplies by 1 + w); llama.cpp multiplies by the stored weight, so every norm
gets one added on the way in. Gemma alternates sliding-window and global
attention layers; llama.cpp derives the pattern, it needs only the window.
"""

from __future__ import annotations

import re
from typing import Any

import gguf
import numpy as np

from quantize.arch.base import DECODER_LAYOUT, Architecture, register


@register
class Gemma3(Architecture):
    hf_architectures = ("Gemma3ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.GEMMA3
    layout = {
        **DECODER_LAYOUT,
        "ffn_norm": "model.layers.{bid}.pre_feedforward_layernorm",
        "post_attention_norm": "model.layers.{bid}.post_attention_layernorm",
        "post_ffw_norm": "model.layers.{bid}.post_feedforward_layernorm",
        "attn_q_norm": "model.layers.{bid}.self_attn.q_norm",
        "attn_k_norm": "model.layers.{bid}.self_attn.k_norm",
    }

    @property
    def tied_embeddings(self) -> bool:
        return bool(self.get("tie_word_embeddings", True))  # Gemma ties unless told otherwise

    def write_hparams(self, writer: gguf.GGUFWriter) -> None:
        super().write_hparams(writer)
        if self.get("sliding_window"):
            writer.add_sliding_window(int(self.config["sliding_window"]))
        # the local layers' base: transformers 5 nests it by layer type, 4 names it apart;
        # absent, both mean 10000, which is also what llama.cpp assumes
        local = (self.get("rope_parameters") or {}).get("sliding_attention") or {}
        base = local.get("rope_theta", self.get("rope_local_base_freq"))
        if base is not None:
            writer.add_float32(f"{self.gguf_name()}.rope.freq_base_swa", float(base))

    @staticmethod
    def _is_norm(name: str) -> bool:
        return name.endswith("norm.weight")

    def to_gguf(self, name: str, values: np.ndarray) -> np.ndarray:
        return values + 1.0 if self._is_norm(name) else values

    def from_gguf(self, name: str, values: np.ndarray) -> np.ndarray:
        return values - 1.0 if self._is_norm(name) else values

    @classmethod
    def config_from_gguf(cls, kv: dict[str, Any], has_output: bool) -> dict:
        config = super().config_from_gguf(kv, has_output)
        config.update(
            model_type="gemma3_text",
            hidden_activation="gelu_pytorch_tanh",
            query_pre_attn_scalar=config.get("head_dim", 256),
            sliding_window=int(kv.get("gemma3.attention.sliding_window", 512)),
            rope_local_base_freq=float(kv.get("gemma3.rope.freq_base_swa", 10000.0)),
        )
        return config


@register
class Gemma3Multimodal(Gemma3):
    """Gemma 3 4B and larger as published: the text model nested beside a vision tower.

    Only the text model is converted (llama.cpp keeps the vision projector in a
    separate mmproj file); its config is `text_config` and its tensors carry a
    `language_model.` prefix, which is dropped.
    """

    hf_architectures = ("Gemma3ForConditionalGeneration",)
    VISION = re.compile(r"^(model\.)?(vision_tower|multi_modal_projector)\.")
    # Gemma 3's vocabulary with its image tokens, when text_config does not say.
    DEFAULT_VOCAB = 262208

    def __init__(self, config: dict):
        text = dict(config.get("text_config") or {})
        text.setdefault("vocab_size", config.get("vocab_size", self.DEFAULT_VOCAB))
        text["architectures"] = config.get("architectures")
        super().__init__(text)

    def gguf_tensor_name(self, hf_name: str) -> str | None:
        if self.VISION.match(hf_name):
            return None
        for prefix in ("language_model.model.", "model.language_model."):
            if hf_name.startswith(prefix):
                hf_name = "model." + hf_name.removeprefix(prefix)
        return super().gguf_tensor_name(hf_name.removeprefix("language_model."))
