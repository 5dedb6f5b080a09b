"""Checkpoint folder -> GGUF, one tensor at a time.

The plan (names, shapes, types, byte sizes) is fixed before anything is
written, so the GGUF header goes out first and each tensor is then read,
transformed, encoded and written on its own: peak memory is a few tensors,
not the model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from quantize.arch import Architecture, architecture_for
from quantize.arch.base import BLOCK_NAME
from quantize.checkpoint import Checkpoint, open_checkpoint
from quantize.errors import CheckpointError
from quantize.files import atomic_output, check_space
from quantize.formats import OutputType, encode, encoded_nbytes, tensor_type
from quantize.metadata import ModelCard, write_general
from quantize.progress import NoProgress, Progress
from quantize.vocab import read_vocab

HEADER_ALLOWANCE = 32 * 1024**2  # vocabulary and metadata, generously


@dataclass
class TensorPlan:
    name: str
    shape: tuple[int, ...]
    qtype: gguf.GGMLQuantizationType
    load: Callable[[], np.ndarray]
    input_bytes: int

    @property
    def nbytes(self) -> int:
        return encoded_nbytes(self.shape, self.qtype)


@dataclass
class Conversion:
    path: Path
    tensors: int
    input_bytes: int
    output_bytes: int
    seconds: float


def _order(name: str) -> tuple[int, str]:
    match = BLOCK_NAME.match(name)
    if match:
        return int(match.group(1)), name
    return (-1 if name.startswith("token_embd") else 1 << 30), name


def _source_plan(ckpt: Checkpoint, arch: Architecture) -> dict[str, tuple[tuple, Callable, int]]:
    """GGUF name -> (shape, loader, input bytes) for every tensor llama.cpp will read."""
    planned: dict[str, tuple[tuple, Callable, int]] = {}
    for hf_name, source in ckpt.tensors.items():
        name = arch.gguf_tensor_name(hf_name)
        if name is None:
            continue
        if name in planned:
            raise CheckpointError(
                f"tensor {hf_name} maps to {name}, which another tensor also fills"
            )
        arch.check_shape(hf_name, name, source.shape)

        def load(source=source, name=name) -> np.ndarray:
            return arch.to_gguf(name, source.load())

        planned[name] = (source.shape, load, source.nbytes)
    for name, values in arch.extra_tensors().items():
        planned[name] = (values.shape, lambda values=values: values, 0)
    _check_complete(planned, arch)
    return planned


def _check_complete(planned: dict, arch: Architecture) -> None:
    if "token_embd.weight" not in planned:
        raise CheckpointError("the checkpoint has no token embedding (model.embed_tokens.weight)")
    kinds: dict[int, set[str]] = {}
    for name in planned:
        if match := BLOCK_NAME.match(name):
            kinds.setdefault(int(match.group(1)), set()).add(name.split(".", 2)[2])
    every = set().union(*kinds.values()) if kinds else set()
    for block in range(arch.block_count):
        missing = sorted(every - kinds.get(block, set()))
        if missing:
            gguf_name = f"blk.{block}.{missing[0]}"
            hf_name = arch.hf_tensor_name(gguf_name) or gguf_name
            raise CheckpointError(
                f"tensor {hf_name} is missing (layer {block} of {arch.block_count}): "
                "a shard is incomplete, download the checkpoint again"
            )


def plan_tensors(ckpt: Checkpoint, arch: Architecture, out: OutputType) -> list[TensorPlan]:
    planned = _source_plan(ckpt, arch)
    output_name = "output.weight" if "output.weight" in planned else "token_embd.weight"
    plans = []
    for name in sorted(planned, key=_order):
        shape, load, nbytes = planned[name]
        qtype = tensor_type(name, tuple(shape), out, is_output=name == output_name)
        plans.append(TensorPlan(name, tuple(shape), qtype, load, nbytes))
    return plans


def _declare(writer: gguf.GGUFWriter, plan: TensorPlan) -> None:
    Q = gguf.GGMLQuantizationType
    if plan.qtype in (Q.F32, Q.F16):
        dtype = np.float32 if plan.qtype == Q.F32 else np.float16
        writer.add_tensor_info(plan.name, plan.shape, np.dtype(dtype), plan.nbytes)
    else:
        byte_shape = gguf.quants.quant_shape_to_byte_shape(plan.shape, plan.qtype)
        writer.add_tensor_info(plan.name, byte_shape, np.dtype(np.uint8), plan.nbytes, plan.qtype)


def write_gguf(path: Path, ckpt, arch, out: OutputType, card: ModelCard, progress: Progress) -> int:
    plans = plan_tensors(ckpt, arch, out)
    n_vocab = plans[0].shape[0] if plans[0].name == "token_embd.weight" else arch.need("vocab_size")
    vocab = read_vocab(ckpt, int(n_vocab))
    check_space(path.parent, sum(p.nbytes for p in plans) + HEADER_ALLOWANCE, "the output")
    writer = gguf.GGUFWriter(path, arch.gguf_name())
    write_general(writer, card, out.file_type)
    arch.write_hparams(writer)
    writer.add_vocab_size(int(n_vocab))
    vocab.write(writer)
    for plan in plans:
        _declare(writer, plan)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    progress.start(f"converting to {out.name}", sum(p.input_bytes for p in plans), "B")
    try:
        for plan in plans:
            progress.describe(f"{out.name} {plan.name}")
            writer.write_tensor_data(encode(plan.load(), plan.qtype))
            progress.advance(plan.input_bytes)
    finally:
        writer.close()
        progress.finish()
    return len(plans)


def convert_checkpoint(
    folder: Path,
    out_path: Path,
    out: OutputType,
    card: ModelCard | None = None,
    progress: Progress | None = None,
) -> Conversion:
    """Write `out_path` as a GGUF of numpy type `out` (f16, bf16, q8_0, q4_0)."""
    assert out.numpy_type is not None, f"{out.name} needs llama.cpp's quantizer"
    progress = progress or NoProgress()
    ckpt = open_checkpoint(folder)
    arch = architecture_for(ckpt.config)
    card = card or ModelCard.from_checkpoint(ckpt)
    started = time.perf_counter()
    with atomic_output(out_path) as partial:
        count = write_gguf(partial, ckpt, arch, out, card, progress)
    return Conversion(
        out_path, count, ckpt.input_bytes, out_path.stat().st_size, time.perf_counter() - started
    )


def looks_like_hub_id(text: str) -> bool:
    return bool(re.fullmatch(r"(hf:)?[A-Za-z0-9][\w.-]*/[\w.-]+", text))
