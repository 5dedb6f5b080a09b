"""Checksums and atomic file placement: a stored model is whole or absent."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from localllm.progress import ProgressReporter, SilentProgress

CHUNK = 4 * 1024 * 1024


def sha256_chunks(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path, progress: ProgressReporter | None = None) -> str:
    """Hash a file in chunks, reporting bytes read."""
    progress = progress or SilentProgress()
    progress.start(f"verifying {path.name}", path.stat().st_size)
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            progress.advance(len(chunk))
    progress.finish()
    return digest.hexdigest()


def replace_atomically(tmp: Path, final: Path) -> None:
    """Move a finished temp file into place; readers see the old file or the new one."""
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def write_text_atomically(path: Path, text: str) -> None:
    """Write a small text file so readers see the old content or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def temp_path_for(final: Path) -> Path:
    """A temp name in the same folder, so the final rename is atomic."""
    return final.with_name(f".{final.name}.{os.getpid()}.part")
