"""One call from a source (checkpoint folder or GGUF) to a finished GGUF of any type.

numpy types from a checkpoint are written directly; K-quants go through a
16-bit intermediate that llama.cpp's quantizer reads; a GGUF source is
requantized by llama.cpp for every type. When asked, the 16-bit reference
the quality report compares against is kept at a path the caller owns.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import gguf

from quantize.checkpoint import open_checkpoint
from quantize.convert import convert_checkpoint
from quantize.files import atomic_output, check_space, scratch_file
from quantize.formats import OUTPUT_TYPES, OutputType
from quantize.metadata import ModelCard
from quantize.native import llama_quantize
from quantize.progress import NoProgress, Progress

UNQUANTIZED = {
    int(gguf.LlamaFileType.ALL_F32),
    int(gguf.LlamaFileType.MOSTLY_F16),
    int(gguf.LlamaFileType.MOSTLY_BF16),
}


@dataclass
class Result:
    path: Path
    out_type: str
    input_bytes: int
    output_bytes: int
    seconds: float
    reference: Path | None  # the 16-bit model the report compares against


def _estimate(size_16bit: int, out: OutputType) -> int:
    return int(size_16bit * out.bits_per_weight / 16) + 32 * 1024**2


def _sixteen_bit_for(dtypes: set[str]) -> OutputType:
    """bf16 keeps a bf16 checkpoint exact; f16 keeps f16/f32 ones exact (or nearly)."""
    return OUTPUT_TYPES["bf16" if dtypes == {"BF16"} else "f16"]


def _from_checkpoint(folder, dtypes, out_path, out, card, progress, reference, verbose):
    sixteen = _sixteen_bit_for(dtypes)
    if out.numpy_type is not None:
        convert_checkpoint(folder, out_path, out, card, progress)
        if reference is not None:
            convert_checkpoint(folder, reference, sixteen, card, progress)
        return reference
    with scratch_file(out_path, ".16bit") as scratch:
        intermediate = reference or scratch
        convert_checkpoint(folder, intermediate, sixteen, card, progress)
        size = intermediate.stat().st_size
        check_space(out_path.parent, _estimate(size, out), "the output")
        with atomic_output(out_path) as partial:
            llama_quantize(intermediate, partial, out, expected_bytes=_estimate(size, out),
                           progress=progress, verbose=verbose)  # fmt: skip
    return reference


def _from_gguf(source: Path, out_path, out, progress, verbose) -> Path:
    file_type = int(gguf.GGUFReader(source).fields["general.file_type"].contents())
    already = file_type not in UNQUANTIZED
    if already:
        warnings.warn(
            f"{source.name} is already quantized: requantizing compounds the error; "
            "start from the 16-bit model when you have it",
            stacklevel=3,
        )
    size = source.stat().st_size
    expected = _estimate(size * 16 // 5, out) if already else _estimate(size, out)
    check_space(out_path.parent, expected, "the output")
    with atomic_output(out_path) as partial:
        llama_quantize(source, partial, out, expected_bytes=expected, allow_requantize=already,
                       progress=progress, verbose=verbose)  # fmt: skip
    return source


def quantize(
    source: Path,
    out_path: Path,
    out: OutputType,
    *,
    card: ModelCard | None = None,
    progress: Progress | None = None,
    reference: Path | None = None,
    verbose: bool = False,
) -> Result:
    """Convert or requantize `source` into `out_path`; returns sizes, time and the reference."""
    progress = progress or NoProgress()
    started = time.perf_counter()
    if source.is_dir():
        ckpt = open_checkpoint(source)
        input_bytes = ckpt.input_bytes
        ref = _from_checkpoint(
            source, ckpt.source_dtypes(), out_path, out, card, progress, reference, verbose
        )
    else:
        input_bytes = source.stat().st_size
        ref = _from_gguf(source, out_path, out, progress, verbose)
    return Result(
        out_path, out.name, input_bytes, out_path.stat().st_size,
        time.perf_counter() - started, ref,
    )  # fmt: skip
