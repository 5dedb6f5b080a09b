"""Output files appear whole or not at all.

Work goes to a hidden partial file beside the output (so the final rename is
atomic), removed on any error, Ctrl-C or SIGTERM. A run killed outright leaves
its partial file behind; the next run in that folder removes partial files
whose process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from quantize.errors import NotEnoughSpace

PARTIAL = re.compile(r"^\..+\.(\d+)\.partial$")
SPACE_MARGIN = 64 * 1024**2


def partial_path(final: Path, tag: str = "") -> Path:
    return final.with_name(f".{final.name}{tag}.{os.getpid()}.partial")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: Path) -> list[Path]:
    removed = []
    for entry in folder.glob(".*.partial"):
        match = PARTIAL.match(entry.name)
        if match and not _alive(int(match.group(1))):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def check_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + SPACE_MARGIN:
        raise NotEnoughSpace(
            f"{what} needs about {needed / 2**30:.2f} GiB but {folder} has "
            f"{free / 2**30:.2f} GiB free: free some space or choose another -o"
        )


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Let SIGTERM unwind like Ctrl-C, so cleanup runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def atomic_output(final: Path, tag: str = "") -> Iterator[Path]:
    """Yield a partial path; on success it becomes `final`, otherwise it is removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final.parent)
    partial = partial_path(final, tag)
    try:
        with terminate_as_interrupt():
            yield partial
            with partial.open("rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def scratch_file(near: Path, tag: str) -> Iterator[Path]:
    """A partial file that is always removed (intermediate GGUFs)."""
    path = partial_path(near, tag)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
