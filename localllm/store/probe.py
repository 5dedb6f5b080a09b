"""The first load of a model file, tried in a child process: a crash there becomes an error.

Some damage llama.cpp does not refuse but asserts on, and an assertion aborts
the whole process (exit 134, none of our messages). gguf_meta checks what it
knows of beforehand; for the rest, the first time a file is used, a child runs
llama.cpp's metadata pass on it: hyperparameters, vocabulary and tensor shapes,
without reading the weights (what llama.cpp's own memory-fit pass does, with
no_alloc and no mmap). A child killed by a signal means the file is damaged.
Files that passed are remembered (path, size, mtime and the llama-cpp-python
version) in the cache folder, so later loads start without the child.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
from pathlib import Path

from localllm.config import Settings
from localllm.errors import ModelLoadError
from localllm.gguf_meta import read_gguf_info
from localllm.store.integrity import write_text_atomically

RECORD_NAME = "loadable-models.json"
PROBE_TIMEOUT_S = 300  # the metadata pass reads no weights, but a cold disk may be slow
REFUSED = 10  # the child's exit code when llama.cpp refused the file with an error of its own
# The signals a crash of llama.cpp ends in (an assertion aborts); others (SIGKILL) say nothing.
_CRASHES = {getattr(signal, name) for name in ("SIGABRT", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL")
            if hasattr(signal, name)}  # fmt: skip


def _probe_child(path: str, verbose: bool, stderr_path: str) -> None:
    """The child: llama.cpp's metadata pass over the file. Exit 0: it loads; REFUSED: refused.

    Killed by a signal: llama.cpp crashed; ggml's line about why is in stderr_path."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    os.environ["GGML_NO_BACKTRACE"] = "1"  # else ggml's abort attaches gdb for a backtrace
    if not verbose:  # ggml's abort writes to fd 2 whatever the log callback
        fd = os.open(stderr_path, os.O_WRONLY)
        os.dup2(fd, 2)
        os.close(fd)
    import ctypes

    import llama_cpp

    if not verbose:
        quiet = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(quiet, ctypes.c_void_p(0))
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0
    params.no_alloc = True  # hyperparameters, vocabulary, tensor shapes: no weights are read
    params.load_mode = 0  # LLAMA_LOAD_MODE_NONE: no_alloc asserts against mmap
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        sys.exit(REFUSED)
    llama_cpp.llama_model_free(model)


def _run_probe(path: Path, verbose: bool) -> tuple[int | None, str]:
    """Run _probe_child in a spawned process: its exit code (None: no verdict) and stderr."""
    import multiprocessing
    import tempfile

    with tempfile.TemporaryDirectory(prefix="localllm-probe-") as folder:
        log = Path(folder) / "stderr.log"
        log.touch()
        context = multiprocessing.get_context("spawn")  # what the frozen executable supports
        child = context.Process(
            target=_probe_child, args=(str(path), verbose, str(log)), name="localllm-probe",
            daemon=True,
        )  # fmt: skip
        child.start()
        try:
            child.join(PROBE_TIMEOUT_S)
        except BaseException:  # Ctrl+C: the child goes with us
            child.kill()
            raise
        if child.is_alive():  # too slow to tell: the real load decides
            child.kill()
            child.join()
            return None, ""
        return child.exitcode, log.read_text(errors="replace")


def _llama_cpp_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return "unknown"


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "llama_cpp": _llama_cpp_version()}


def _read_record(record_path: Path) -> dict:
    try:
        data = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _crash_detail(stderr: str) -> str | None:
    """ggml's line about the failed check: 'llama-vocab.cpp:2544: GGML_ASSERT(...) failed'."""
    for line in stderr.splitlines():
        match = re.search(r"([\w.+-]+\.(?:c|cc|cpp|h)):(\d+): (.+)", line)
        if match:
            return f"{match[1]}:{match[2]}: {match[3].strip()}"
    return None


def crash_name(code: int | None) -> str | None:
    """How the child died, when it crashed; None when it exited or was merely killed."""
    if code is None:
        return None
    if code < 0 and -code in _CRASHES:
        return signal.Signals(-code).name
    if sys.platform == "win32" and (code == 3 or code >= 0xC0000000):  # abort(); an exception
        return f"exit code {code:#x}"
    return None


def _crash_error(path: Path, name: str, stderr: str) -> ModelLoadError:
    detail = _crash_detail(stderr)
    return ModelLoadError(
        f"llama.cpp crashed reading {path.name} ({name}{': ' + detail if detail else ''}): "
        "the file is damaged; download it again"
    )


def check_loadable(settings: Settings, path: str | Path) -> None:
    """Raise if llama.cpp would crash on this file; a no-op for a file that passed before.

    The header is validated first (InvalidModelFile with our own words); a file
    llama.cpp merely refuses is left to the real load, which reports why.
    """
    path = Path(path).resolve()
    record_path = settings.cache_dir / RECORD_NAME
    stamp = _stamp(path)
    record = _read_record(record_path)
    if record.get(str(path)) == stamp:
        return
    read_gguf_info(path)
    code, stderr = _run_probe(path, settings.debug)
    crash = crash_name(code)
    if crash:
        raise _crash_error(path, crash, stderr)
    if code == 0:
        record = {p: s for p, s in _read_record(record_path).items() if os.path.exists(p)}
        record[str(path)] = stamp
        with contextlib.suppress(OSError):  # a read-only cache: probing again next time
            write_text_atomically(record_path, json.dumps(record, indent=1, sort_keys=True))
