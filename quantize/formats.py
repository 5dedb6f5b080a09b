"""The output types `localllm quantize` offers and what each means per tensor.

f16, bf16, q8_0 and q4_0 are written straight from numpy with gguf.quants;
the K-quants need llama.cpp's own quantizer (native.py), fed a 16-bit GGUF.
As in llama.cpp, 1-D tensors (norms, biases) stay f32 and a row length that
is not a whole number of blocks falls back to f16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType
from gguf.quants import quant_shape_to_byte_shape, quantize

Q = GGMLQuantizationType


@dataclass(frozen=True)
class OutputType:
    name: str
    file_type: LlamaFileType
    numpy_type: Q | None  # None: only llama.cpp's quantizer makes it
    bits_per_weight: float  # for disk-space estimates


OUTPUT_TYPES = {
    t.name: t
    for t in (
        OutputType("f16", LlamaFileType.MOSTLY_F16, Q.F16, 16.0),
        OutputType("bf16", LlamaFileType.MOSTLY_BF16, Q.BF16, 16.0),
        OutputType("q8_0", LlamaFileType.MOSTLY_Q8_0, Q.Q8_0, 8.5),
        OutputType("q4_0", LlamaFileType.MOSTLY_Q4_0, Q.Q4_0, 4.5),
        OutputType("q6_k", LlamaFileType.MOSTLY_Q6_K, None, 6.6),
        OutputType("q5_k_m", LlamaFileType.MOSTLY_Q5_K_M, None, 5.7),
        OutputType("q4_k_m", LlamaFileType.MOSTLY_Q4_K_M, None, 4.9),
    )
}


def output_type(name: str) -> OutputType:
    key = name.lower()
    if key not in OUTPUT_TYPES:
        raise ValueError(f"unknown type {name!r}: choose one of {', '.join(OUTPUT_TYPES)}")
    return OUTPUT_TYPES[key]


def tensor_type(name: str, shape: tuple[int, ...], out: OutputType, is_output: bool) -> Q:
    """The GGML type one tensor gets in a numpy-written file of type `out`."""
    assert out.numpy_type is not None
    if len(shape) < 2 or name.endswith(".bias") or "norm" in name or "rope_" in name:
        return Q.F32
    wanted = out.numpy_type
    if wanted == Q.Q4_0 and is_output:
        wanted = Q.Q8_0  # llama.cpp keeps the output projection at higher precision
    block = GGML_QUANT_SIZES[wanted][0]
    if shape[-1] % block:
        return Q.F16
    return wanted


def encoded_nbytes(shape: tuple[int, ...], qtype: Q) -> int:
    if qtype == Q.F32:
        return int(np.prod(shape)) * 4
    if qtype == Q.F16:
        return int(np.prod(shape)) * 2
    return int(np.prod(quant_shape_to_byte_shape(shape, qtype)))


def encode(values: np.ndarray, qtype: Q) -> np.ndarray:
    """float32 values -> the bytes (or f16/f32 array) GGUF stores for this type."""
    if qtype == Q.F32:
        return np.ascontiguousarray(values, dtype=np.float32)
    return quantize(np.ascontiguousarray(values, dtype=np.float32), qtype)
