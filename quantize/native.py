"""llama.cpp's own quantizer (llama_model_quantize) for the K-quants and GGUF requantizing.

The K-quants choose per-tensor types with llama.cpp's rules (e.g. q4_k_m
keeps some attention and feed-forward tensors at 6 bits), which only its C++
code implements. It writes the output itself; we give it a partial path and
watch that file grow to show progress.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

from quantize.errors import QuantizeError
from quantize.formats import OutputType
from quantize.progress import NoProgress, Progress

POLL_SECONDS = 0.2
_SILENT_LOG = None  # kept referenced: llama.cpp holds a raw pointer to the callback


def _silence_llama_log() -> None:
    global _SILENT_LOG
    import llama_cpp

    if _SILENT_LOG is None:
        _SILENT_LOG = llama_cpp.llama_log_callback(lambda level, text, data: None)
    llama_cpp.llama_log_set(_SILENT_LOG, ctypes.c_void_p(0))


def _params(out: OutputType, threads: int, allow_requantize: bool):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(out.file_type)
    params.nthread = threads
    params.allow_requantize = allow_requantize
    return params


def llama_quantize(
    source: Path,
    target: Path,
    out: OutputType,
    *,
    expected_bytes: int,
    threads: int = 0,
    allow_requantize: bool = False,
    progress: Progress | None = None,
    verbose: bool = False,
) -> None:
    """Run llama.cpp's quantizer from `source` to `target`, showing the output's growth."""
    import llama_cpp

    progress = progress or NoProgress()
    if not verbose:
        _silence_llama_log()
    params = _params(out, threads, allow_requantize)
    result: dict[str, int] = {}

    def work() -> None:
        result["code"] = llama_cpp.llama_model_quantize(
            str(source).encode(), str(target).encode(), ctypes.byref(params)
        )

    worker = threading.Thread(target=work, name="llama-quantize", daemon=True)
    progress.start(f"llama.cpp quantizing to {out.name}", expected_bytes, "B")
    worker.start()
    written = 0
    try:
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            size = target.stat().st_size if target.exists() else 0
            if size > written:
                progress.advance(min(size, expected_bytes) - min(written, expected_bytes))
                written = size
    finally:
        progress.finish()
    if result.get("code", 1) != 0:
        raise QuantizeError(
            f"llama.cpp could not quantize {source.name} to {out.name} (it reported an error; "
            "run with LOCALLLM_DEBUG=1 to see its log)"
        )
