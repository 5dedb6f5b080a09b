"""GGUF -> Hugging Face checkpoint folder (safetensors, config, tokenizer files).

The way back from convert: every tensor is dequantized with gguf.quants,
the GGUF-side transforms are undone by the same architecture class that
applies them, and the vocabulary is written as tokenizer.json (BPE) or
tokenizer.model (SentencePiece). It lets the tests build real checkpoints from
the GGUF models the package index carries, and lets users recover an
editable checkpoint from a GGUF they have.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf.quants import dequantize

from quantize.arch.base import Architecture, for_gguf_arch
from quantize.pretokenizers import section_for
from quantize.progress import NoProgress, Progress
from quantize.safetensors_io import ITEM_SIZES, SafetensorsWriter
from quantize.spm_model import SentencePieceModel, serialize_model

T = gguf.TokenType
SPECIAL_KEYS = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id",
                "pad": "padding_token_id"}  # fmt: skip


BYTE_LEVEL_DECODER = {
    "type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True
}  # fmt: skip


def read_kv(reader: gguf.GGUFReader) -> dict[str, Any]:
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def tensor_values(tensor) -> np.ndarray:
    """A GGUF tensor as float32 in numpy (rows, columns) order."""
    return dequantize(np.asarray(tensor.data), tensor.tensor_type).astype(np.float32, copy=False)


def _hf_tensors(reader, arch: Architecture) -> dict[str, Any]:
    named = {}
    for tensor in reader.tensors:
        hf_name = arch.hf_tensor_name(tensor.name)
        if hf_name is not None:
            named[hf_name] = tensor
    return named


def _shards(named: dict, dtype: str, shard_bytes: int | None) -> list[list[str]]:
    shards, current, size = [], [], 0
    for name, tensor in named.items():
        nbytes = int(np.prod(tensor.shape)) * ITEM_SIZES[dtype]
        if current and shard_bytes and size + nbytes > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(name)
        size += nbytes
    return [*shards, current]


def _write_weights(folder, reader, arch, dtype, shard_bytes, progress) -> None:
    named = _hf_tensors(reader, arch)
    groups = _shards(named, dtype, shard_bytes)
    weight_map = {}
    progress.start("exporting", len(named), "tensors")
    for index, names in enumerate(groups, 1):
        filename = (
            "model.safetensors" if len(groups) == 1
            else f"model-{index:05d}-of-{len(groups):05d}.safetensors"
        )  # fmt: skip
        shapes = {n: (dtype, tuple(int(d) for d in reversed(named[n].shape))) for n in names}
        out = SafetensorsWriter(folder / filename, shapes)
        for name in names:
            tensor = named[name]
            out.write(name, arch.from_gguf(tensor.name, tensor_values(tensor)))
            weight_map[name] = filename
            progress.advance(1)
        out.close()
    progress.finish()
    if len(groups) > 1:
        index = {"metadata": {}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _special_tokens(kv: dict) -> dict[str, str]:
    tokens = kv["tokenizer.ggml.tokens"]
    found = {}
    for key, gguf_key in SPECIAL_KEYS.items():
        token_id = kv.get(f"tokenizer.ggml.{gguf_key}")
        if token_id is not None and 0 <= int(token_id) < len(tokens):
            found[key] = tokens[int(token_id)]
    return found


def _bpe_tokenizer(kv: dict) -> dict:
    tokens, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    added = [
        {"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": types[i] == T.CONTROL}
        for i, tok in enumerate(tokens) if types[i] in (T.CONTROL, T.USER_DEFINED)
    ]  # fmt: skip
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": section_for(kv.get("tokenizer.ggml.pre") or "gpt-2"),
        "post_processor": None,
        "decoder": BYTE_LEVEL_DECODER,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "byte_fallback": False,
            "vocab": {tok: i for i, tok in enumerate(tokens) if types[i] != T.UNUSED},
            "merges": list(kv.get("tokenizer.ggml.merges") or []),
        },
    }


def _spm_model(kv: dict) -> SentencePieceModel:
    def special(key: str, default: int) -> int:
        return int(kv.get(f"tokenizer.ggml.{SPECIAL_KEYS[key]}", default))

    return SentencePieceModel(
        pieces=list(kv["tokenizer.ggml.tokens"]),
        scores=[float(s) for s in kv["tokenizer.ggml.scores"]],
        types=[int(t) for t in kv["tokenizer.ggml.token_type"]],
        unk_id=special("unk", 0),
        bos_id=special("bos", 1),
        eos_id=special("eos", 2),
        pad_id=special("pad", -1),
        add_dummy_prefix=bool(kv.get("tokenizer.ggml.add_space_prefix", True)),
        model_type=2,
    )


def _write_tokenizer(folder: Path, kv: dict) -> None:
    if kv.get("tokenizer.ggml.model") == "gpt2":
        (folder / "tokenizer.json").write_text(json.dumps(_bpe_tokenizer(kv), ensure_ascii=False))
    else:
        (folder / "tokenizer.model").write_bytes(serialize_model(_spm_model(kv)))
    config: dict[str, Any] = {f"{k}_token": v for k, v in _special_tokens(kv).items()}
    for key in ("add_bos", "add_eos"):
        if f"tokenizer.ggml.{key}_token" in kv:
            config[f"{key}_token"] = bool(kv[f"tokenizer.ggml.{key}_token"])
    if kv.get("tokenizer.chat_template"):
        config["chat_template"] = kv["tokenizer.chat_template"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))


def _write_config(folder: Path, kv: dict, cls, has_output: bool, dtype: str) -> dict:
    config = cls.config_from_gguf(kv, has_output)
    config["torch_dtype"] = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype]
    config["_name_or_path"] = kv.get("general.name") or folder.name
    for key, gguf_key in SPECIAL_KEYS.items():
        if key in ("bos", "eos") and f"tokenizer.ggml.{gguf_key}" in kv:
            config[f"{key}_token_id"] = int(kv[f"tokenizer.ggml.{gguf_key}"])
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    generation = {k: config[k] for k in ("bos_token_id", "eos_token_id") if k in config}
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2))
    if kv.get("general.license"):
        card = f"---\nlicense: {kv['general.license']}\n---\n\nExported from GGUF by localllm.\n"
        (folder / "README.md").write_text(card)
    return config


def export_checkpoint(
    gguf_path: Path,
    folder: Path,
    *,
    dtype: str = "F32",
    shard_bytes: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write a Hugging Face checkpoint folder equivalent to the GGUF model."""
    reader = gguf.GGUFReader(gguf_path)
    kv = read_kv(reader)
    cls = for_gguf_arch(kv["general.architecture"])
    has_output = any(t.name == "output.weight" for t in reader.tensors)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        config = _write_config(partial, kv, cls, has_output, dtype)
        _write_tokenizer(partial, kv)
        _write_weights(partial, reader, cls(config), dtype, shard_bytes, progress or NoProgress())
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder
