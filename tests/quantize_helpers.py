"""Helpers for the quantizer tests: greedy decoding through the engine, tiny random checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from localllm.engine import LoadOptions, SamplingParams
from localllm.engine.base import Finished, Token
from localllm.engine.llama import load_engine
from quantize.pretokenizers import section_for
from quantize.safetensors_io import SafetensorsWriter


def generate(path: Path, prompt: str, n: int = 8) -> tuple[str, int]:
    engine = load_engine(path, LoadOptions(n_ctx=256))
    try:
        text, count = "", 0
        for event in engine.stream(
            engine.tokenize(prompt), SamplingParams(max_tokens=n, temperature=0)
        ):
            if isinstance(event, Token):
                text += event.text
            elif isinstance(event, Finished):
                count = event.stats.completion_tokens
        return text, count
    finally:
        engine.close()


def byte_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n")]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_tokenizer(pre: str) -> dict:
    tokens = SPECIALS + byte_alphabet() + ["".join(m) for m in MERGES]
    # every flag, as tokenizers needs them to load the file (the probe hash does)
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(SPECIALS)]  # fmt: skip
    return {
        "version": "1.0",
        "added_tokens": added,
        "pre_tokenizer": section_for(pre),
        "model": {
            "type": "BPE",
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [" ".join(m) for m in MERGES],
        },
    }


TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 320,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "bos_token_id": 1, "eos_token_id": 2}  # fmt: skip


def tiny_tensors(family: str, config: dict) -> dict[str, tuple[int, ...]]:
    h, ff, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    hd = config.get("head_dim", h // config["num_attention_heads"])
    q, kv = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd
    shapes = {"model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,),
              "lm_head.weight": (vocab, h)}  # fmt: skip
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.o_proj.weight": (h, q),
            p + "mlp.down_proj.weight": (h, ff),
        }
        if family == "phi3":
            shapes |= {p + "self_attn.qkv_proj.weight": (q + 2 * kv, h),
                       p + "mlp.gate_up_proj.weight": (2 * ff, h)}  # fmt: skip
            continue
        shapes |= {p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
                   p + "self_attn.v_proj.weight": (kv, h), p + "mlp.gate_proj.weight": (ff, h),
                   p + "mlp.up_proj.weight": (ff, h)}  # fmt: skip
        if family == "qwen2":
            shapes |= {p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,),
                       p + "self_attn.v_proj.bias": (kv,)}  # fmt: skip
        if family in ("qwen3", "gemma3"):
            shapes |= {p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,)}
        if family == "gemma3":
            shapes |= {p + "pre_feedforward_layernorm.weight": (h,),
                       p + "post_feedforward_layernorm.weight": (h,)}  # fmt: skip
    return shapes


FAMILIES = {
    "llama": ("LlamaForCausalLM", "smollm", {}),
    "qwen2": ("Qwen2ForCausalLM", "qwen2", {}),
    "qwen3": ("Qwen3ForCausalLM", "qwen2", {"head_dim": 32}),
    "phi3": ("Phi3ForCausalLM", "gpt-2", {}),
    "gemma3": ("Gemma3ForCausalLM", "gpt-2", {"head_dim": 16, "sliding_window": 64}),
}


def rope_config(rope: dict, layout: int) -> dict:
    """RoPE settings (rope_theta, rope_type, factors) as transformers `layout` writes config.json.

    4: rope_theta at the top level, the scaling in rope_scaling (null when there is none);
    5: all of it in rope_parameters.
    """
    if layout == 5:
        return {"rope_parameters": {"rope_type": "default", **rope}}
    scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
    return {"rope_theta": rope["rope_theta"], "rope_scaling": scaling or None}


def write_tiny_checkpoint(
    folder: Path, family: str, seed: int = 0, *, layout: int = 4, rope: dict | None = None
) -> dict[str, np.ndarray]:
    """A random-weight checkpoint of a registered family; returns its tensors.

    Its config.json is laid out as transformers `layout` (4 or 5) writes one, with `rope`
    added to TINY's rope_theta.
    """
    architecture, pre, extra = FAMILIES[family]
    config = {**TINY, **extra, "architectures": [architecture], "model_type": family,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16"}  # fmt: skip
    config |= rope_config({"rope_theta": config.pop("rope_theta"), **(rope or {})}, layout)
    folder.mkdir(parents=True, exist_ok=True)
    _write_tensors(folder, tiny_tensors(family, config), seed)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text(json.dumps(tiny_tokenizer(pre)))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"})
    )
    return _values(tiny_tensors(family, config), seed)


def _values(shapes: dict, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: (np.ones(shape) if "norm" in name else rng.normal(0, 0.05, shape)).astype(np.float32)
        for name, shape in shapes.items()
    }


def _write_tensors(folder: Path, shapes: dict, seed: int, rename=lambda n: n) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    values = _values(shapes, seed)
    writer = SafetensorsWriter(folder / "model.safetensors",
                               {rename(n): ("BF16", s) for n, s in shapes.items()})  # fmt: skip
    for name, array in values.items():
        writer.write(rename(name), array)
    writer.close()


def write_tiny_gemma3_multimodal(folder: Path) -> None:
    """Gemma 3 as the 4B+ checkpoints ship it: a text model nested beside a vision tower."""
    write_tiny_checkpoint(folder, "gemma3")
    text = json.loads((folder / "config.json").read_text())
    shapes = tiny_tensors("gemma3", text)
    shapes |= {"vision_tower.vision_model.embeddings.patch_embedding.weight": (32, 3, 4, 4),
               "multi_modal_projector.mm_input_projection_weight": (32, 64)}  # fmt: skip

    def rename(name: str) -> str:
        if name.startswith("model."):
            return "language_model." + name
        return "language_model." + name if name == "lm_head.weight" else name

    _write_tensors(folder, shapes, 0, rename)
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32}
    config = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "text_config": {**text, "model_type": "gemma3_text"},
        "vision_config": vision,
    }
    del config["text_config"]["architectures"]
    (folder / "config.json").write_text(json.dumps(config))
