"""Read safetensors tensors lazily (memory-mapped, one at a time) and write new files.

Reading goes through gguf's SafetensorsLocal, which maps byte ranges instead
of loading the file; this module adds the checks a user needs when a download
was cut short, and the bf16 handling numpy lacks. Writing streams one tensor at
a time so exporting a checkpoint never holds the whole model in memory.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf.utility import LocalTensor, SafetensorsLocal

from quantize.errors import CheckpointError

ITEM_SIZES = {"F32": 4, "F16": 2, "BF16": 2}
HEADER_ALIGN = 8


@dataclass(frozen=True)
class SourceTensor:
    """One tensor of a checkpoint: where it lives and how to read it."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    local: LocalTensor

    @property
    def nbytes(self) -> int:
        return self.local.data_range.size

    def load(self) -> np.ndarray:
        """The tensor as float32 (a fresh array; the file mapping is released)."""
        raw = self.local.mmap_bytes()
        if self.dtype == "F32":
            values = raw.view(np.float32)
        elif self.dtype == "F16":
            values = raw.view(np.float16)
        else:  # BF16: the high half of a float32
            values = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        return values.astype(np.float32, copy=True).reshape(self.shape)


def read_tensor_index(path: Path) -> dict[str, SourceTensor]:
    """The tensors of one safetensors file, validated against the file's size."""
    try:
        tensors = SafetensorsLocal(path).tensors
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{path.name} has a damaged safetensors header ({exc}): download it again"
        ) from None
    size = path.stat().st_size
    found = {}
    for name, local in tensors.items():
        found[name] = _validated(path, name, local, size)
    return found


def _validated(path: Path, name: str, local: LocalTensor, file_size: int) -> SourceTensor:
    if local.dtype not in ITEM_SIZES:
        raise CheckpointError(
            f"{path.name}: tensor {name} is {local.dtype}; only F32, F16 and BF16 checkpoints "
            "can be converted"
        )
    expected = int(np.prod(local.shape, dtype=np.int64)) * ITEM_SIZES[local.dtype]
    span = local.data_range
    if span.size != expected:
        raise CheckpointError(
            f"{path.name}: tensor {name} has {span.size} bytes but its shape "
            f"{list(local.shape)} needs {expected}: the file is damaged, download it again"
        )
    if span.offset + span.size > file_size:
        raise CheckpointError(
            f"{path.name} is truncated (tensor {name} runs past the end): download it again"
        )
    return SourceTensor(name, local.dtype, tuple(local.shape), local)


def to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns, rounding to nearest even like torch does."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + (0x7FFF + ((bits >> 16) & 1))
    return (rounded >> 16).astype(np.uint16)


class SafetensorsWriter:
    """Write a safetensors file tensor by tensor: declare all tensors, then stream their data."""

    def __init__(self, path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]]):
        self.path = path
        self._pending = list(tensors.items())
        header, offset = {}, 0
        for name, (dtype, shape) in self._pending:
            nbytes = int(np.prod(shape, dtype=np.int64)) * ITEM_SIZES[dtype]
            span = [offset, offset + nbytes]
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": span}
            offset += nbytes
        header["__metadata__"] = {"format": "pt"}
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % HEADER_ALIGN)
        self._fh = path.open("wb")
        self._fh.write(struct.pack("<Q", len(blob)) + blob)

    def write(self, name: str, values: np.ndarray) -> None:
        expected_name, (dtype, shape) = self._pending.pop(0)
        if name != expected_name or tuple(values.shape) != tuple(shape):
            raise ValueError(f"expected {expected_name} {shape}, got {name} {values.shape}")
        if dtype == "BF16":
            data = to_bf16_bits(values)
        else:
            data = np.ascontiguousarray(values, dtype=np.float32 if dtype == "F32" else np.float16)
        data.tofile(self._fh)

    def close(self) -> None:
        self._fh.close()
        if self._pending:
            raise ValueError(f"{len(self._pending)} tensors were declared but not written")
