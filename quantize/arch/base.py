"""What every model family shares: the registry, name mapping and hyperparameters.

A family module subclasses Architecture, lists the Hugging Face architecture
names it converts, and overrides only what differs (extra hyperparameters,
tensor transforms). The same class also runs backwards, GGUF to Hugging Face,
for the exporter.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import gguf
import numpy as np

from quantize.errors import UnsupportedModel

_REGISTRY: dict[str, type[Architecture]] = {}
ENCODER_ONLY = re.compile(r"Bert|Roberta|Electra|T5|Bart|Whisper|ForMaskedLM|Encoder", re.I)

# Hugging Face name templates by GGUF tensor kind, for the common decoder layout.
DECODER_LAYOUT = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
    "attn_norm": "model.layers.{bid}.input_layernorm",
    "attn_q": "model.layers.{bid}.self_attn.q_proj",
    "attn_k": "model.layers.{bid}.self_attn.k_proj",
    "attn_v": "model.layers.{bid}.self_attn.v_proj",
    "attn_output": "model.layers.{bid}.self_attn.o_proj",
    "ffn_norm": "model.layers.{bid}.post_attention_layernorm",
    "ffn_gate": "model.layers.{bid}.mlp.gate_proj",
    "ffn_up": "model.layers.{bid}.mlp.up_proj",
    "ffn_down": "model.layers.{bid}.mlp.down_proj",
}
BLOCK_NAME = re.compile(r"^blk\.(\d+)\.([a-z_0-9]+)\.(weight|bias)$")
GLOBAL_NAME = re.compile(r"^([a-z_0-9]+)\.(weight|bias)$")
# Scaling that GGUF states as keys, for any family (as llama.cpp's converter writes it);
# "llama3" and "longrope" become rope-factor tensors in the family's own code.
ROPE_SCALING = {"linear": gguf.RopeScalingType.LINEAR, "yarn": gguf.RopeScalingType.YARN}
# transformers' optional yarn settings -> the llama.cpp key suffix; absent, llama.cpp derives them.
YARN_KEYS = {"extrapolation_factor": "yarn_ext_factor", "attention_factor": "yarn_attn_factor",
             "beta_fast": "yarn_beta_fast", "beta_slow": "yarn_beta_slow"}  # fmt: skip


def rope_parameters(config: dict) -> dict:
    """The full-attention layers' RoPE settings, from config.json in either layout.

    transformers 4 writes rope_theta (and Phi-3's partial_rotary_factor and
    original_max_position_embeddings) at the top level and the scaling as
    `rope_scaling`, null when there is none; transformers 5 writes all of it as
    `rope_parameters`, keyed by layer type for models that mix attention kinds.
    """
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if "full_attention" in params or "sliding_attention" in params:
        params = params.get("full_attention") or {}
    params = dict(params)
    for key in ("rope_theta", "partial_rotary_factor", "original_max_position_embeddings"):
        if params.get(key) is None and config.get(key) is not None:
            params[key] = config[key]
    # transformers reads an absent type as plain RoPE; older configs call the key "type"
    params["rope_type"] = params.get("rope_type") or params.get("type") or "default"
    return params


def rope_value(rope: dict, key: str) -> Any:
    """A RoPE setting the maths needs: an error naming it rather than a guess."""
    if rope.get(key) is None:
        raise UnsupportedModel(
            f"config.json has no {key} (neither at the top level nor in rope_parameters): "
            "the checkpoint is incomplete"
        )
    return rope[key]


def register(cls: type[Architecture]) -> type[Architecture]:
    for name in cls.hf_architectures:
        _REGISTRY[name] = cls
    return cls


def registered() -> dict[str, type[Architecture]]:
    return dict(_REGISTRY)


def supported_names() -> str:
    return ", ".join(sorted(_REGISTRY))


def architecture_for(config: dict) -> Architecture:
    """The family that converts this config.json, or an error naming what is supported."""
    names = config.get("architectures") or [config.get("model_type") or "unknown"]
    for name in names:
        if name in _REGISTRY:
            return _REGISTRY[name](config)
    kind = "an encoder-only model" if ENCODER_ONLY.search(names[0]) else "not supported"
    raise UnsupportedModel(
        f"{names[0]} is {kind}: localllm converts decoder models of these architectures: "
        f"{supported_names()}"
    )


def for_gguf_arch(arch: str) -> type[Architecture]:
    for cls in _REGISTRY.values():
        if cls.gguf_name() == arch:
            return cls
    raise UnsupportedModel(f"exporting {arch} models is not supported")


class Architecture:
    hf_architectures: ClassVar[tuple[str, ...]] = ()
    gguf_arch: ClassVar[gguf.MODEL_ARCH]
    layout: ClassVar[dict[str, str]] = DECODER_LAYOUT
    # Tensors checkpoints carry that llama.cpp recomputes itself.
    ignored: ClassVar[re.Pattern] = re.compile(r"rotary_emb\.inv_freq$|\.masked_bias$")
    rope_types: ClassVar[frozenset[str]] = frozenset({"default", *ROPE_SCALING})

    def __init__(self, config: dict):
        self.config = config
        self._names = gguf.get_tensor_name_map(self.gguf_arch, self.block_count)

    @classmethod
    def gguf_name(cls) -> str:
        return gguf.MODEL_ARCH_NAMES[cls.gguf_arch]

    # -- hyperparameters ---------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        value = self.config.get(key)
        return default if value is None else value

    def need(self, key: str) -> Any:
        if self.config.get(key) is None:
            raise UnsupportedModel(f"config.json has no {key}: the checkpoint is incomplete")
        return self.config[key]

    @property
    def block_count(self) -> int:
        return int(self.need("num_hidden_layers"))

    @property
    def n_head(self) -> int:
        return int(self.need("num_attention_heads"))

    @property
    def n_head_kv(self) -> int:
        return int(self.get("num_key_value_heads", self.n_head))

    @property
    def head_dim(self) -> int:
        return int(self.get("head_dim", int(self.need("hidden_size")) // self.n_head))

    @property
    def tied_embeddings(self) -> bool:
        return bool(self.get("tie_word_embeddings", False))

    @property
    def rope(self) -> dict:
        rope = rope_parameters(self.config)
        if rope["rope_type"] not in self.rope_types:
            raise UnsupportedModel(
                f"config.json asks for rope_type {rope['rope_type']!r}, which localllm does not "
                f"convert for {self.gguf_name()} (it converts {', '.join(sorted(self.rope_types))})"
            )
        return rope

    def write_hparams(self, writer: gguf.GGUFWriter) -> None:
        writer.add_context_length(int(self.get("max_position_embeddings", 4096)))
        writer.add_embedding_length(int(self.need("hidden_size")))
        writer.add_block_count(self.block_count)
        writer.add_feed_forward_length(int(self.need("intermediate_size")))
        writer.add_head_count(self.n_head)
        writer.add_head_count_kv(self.n_head_kv)
        writer.add_key_length(self.head_dim)
        writer.add_value_length(self.head_dim)
        writer.add_rope_freq_base(float(rope_value(self.rope, "rope_theta")))
        writer.add_layer_norm_rms_eps(float(self.need("rms_norm_eps")))
        self.write_rope_scaling(writer)

    def write_rope_scaling(self, writer: gguf.GGUFWriter) -> None:
        rope = self.rope
        kind = ROPE_SCALING.get(rope["rope_type"])
        if kind is None:
            return  # plain RoPE, or scaling the family writes as tensors
        writer.add_rope_scaling_type(kind)
        writer.add_rope_scaling_factor(float(rope_value(rope, "factor")))
        if kind == gguf.RopeScalingType.YARN:
            original = rope_value(rope, "original_max_position_embeddings")
            writer.add_rope_scaling_orig_ctx_len(int(original))
            arch = self.gguf_name()
            for key, suffix in YARN_KEYS.items():  # raw keys: older gguf has no setters
                if rope.get(key) is not None:
                    writer.add_float32(f"{arch}.rope.scaling.{suffix}", float(rope[key]))

    # -- tensors -------------------------------------------------------------

    def gguf_tensor_name(self, hf_name: str) -> str | None:
        """The GGUF name of a checkpoint tensor; None for tensors llama.cpp does not use."""
        if self.ignored.search(hf_name):
            return None
        if hf_name == "lm_head.weight" and self.tied_embeddings:
            return None  # llama.cpp reuses token_embd when there is no output tensor
        mapped = self._names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise UnsupportedModel(
                f"tensor {hf_name} is not part of the {self.gguf_name()} layout: "
                "is the architecture in config.json right?"
            )
        return mapped

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Weight shapes (rows, columns) by GGUF tensor kind, from config.json."""
        h, ff = int(self.need("hidden_size")), int(self.need("intermediate_size"))
        hd = self.head_dim
        q, kv, vocab = self.n_head * hd, self.n_head_kv * hd, int(self.need("vocab_size"))
        return {
            "token_embd": (vocab, h), "output": (vocab, h), "output_norm": (h,),
            "attn_norm": (h,), "ffn_norm": (h,), "post_attention_norm": (h,),
            "post_ffw_norm": (h,), "attn_q_norm": (hd,), "attn_k_norm": (hd,),
            "attn_q": (q, h), "attn_k": (kv, h), "attn_v": (kv, h), "attn_output": (h, q),
            "attn_qkv": (q + 2 * kv, h),
            "ffn_gate": (ff, h), "ffn_up": (ff, h), "ffn_down": (h, ff),
        }  # fmt: skip

    def check_shape(self, hf_name: str, gguf_name: str, shape: tuple[int, ...]) -> None:
        match = BLOCK_NAME.match(gguf_name) or GLOBAL_NAME.match(gguf_name)
        kind, suffix = (match.groups()[-2:]) if match else (None, None)
        expected = self.expected_shapes().get(kind)
        if expected is None:
            return
        if suffix == "bias":
            expected = expected[:1]
        if tuple(shape) != expected:
            raise UnsupportedModel(
                f"tensor {hf_name} has shape {list(shape)} but config.json implies "
                f"{list(expected)}: the checkpoint and its config.json do not match"
            )

    def to_gguf(self, name: str, values: np.ndarray) -> np.ndarray:
        """Family-specific changes on the way into GGUF (e.g. rotary permutation)."""
        return values

    def from_gguf(self, name: str, values: np.ndarray) -> np.ndarray:
        """The inverse of to_gguf, for the exporter."""
        return values

    def extra_tensors(self) -> dict[str, np.ndarray]:
        """Tensors computed from config.json rather than read (e.g. rope factors)."""
        return {}

    def hf_tensor_name(self, gguf_name: str) -> str | None:
        """The Hugging Face name for a GGUF tensor (exporter); None when it has none."""
        if match := BLOCK_NAME.match(gguf_name):
            bid, kind, suffix = match.groups()
        elif match := GLOBAL_NAME.match(gguf_name):
            bid, (kind, suffix) = None, match.groups()
        else:
            return None
        template = self.layout.get(kind)
        if template is None:
            return None
        return f"{template.format(bid=bid)}.{suffix}"

    # -- the way back: GGUF metadata to config.json ----------------------------

    @classmethod
    def config_from_gguf(cls, kv: dict[str, Any], has_output: bool) -> dict:
        arch = cls.gguf_name()
        n_head = int(kv[f"{arch}.attention.head_count"])
        embd = int(kv[f"{arch}.embedding_length"])
        config = {
            "architectures": [cls.hf_architectures[0]],
            "model_type": arch,
            "hidden_size": embd,
            "intermediate_size": int(kv[f"{arch}.feed_forward_length"]),
            "num_hidden_layers": int(kv[f"{arch}.block_count"]),
            "num_attention_heads": n_head,
            "num_key_value_heads": int(kv.get(f"{arch}.attention.head_count_kv", n_head)),
            "max_position_embeddings": int(kv[f"{arch}.context_length"]),
            "rms_norm_eps": float(kv[f"{arch}.attention.layer_norm_rms_epsilon"]),
            "rope_theta": float(kv.get(f"{arch}.rope.freq_base", 10000.0)),
            "vocab_size": len(kv["tokenizer.ggml.tokens"]),
            "tie_word_embeddings": not has_output,
            "torch_dtype": "float32",
        }
        if f"{arch}.attention.key_length" in kv:
            config["head_dim"] = int(kv[f"{arch}.attention.key_length"])
        return config
