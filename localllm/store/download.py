"""Resumable, verified downloads into Hugging Face's cache layout.

huggingface_hub 2.4's hf_hub_download deletes its partial file when a call
fails, so a pull interrupted by Ctrl-C or a dropped connection would start
again from zero. Here the partial file stays at `blobs/<etag>.incomplete`
across runs and grows with Range requests; bytes are hashed as they arrive;
a stalled connection times out and resumes with backoff. Only a verified
blob is moved into place and linked from `snapshots/<commit>/<file>`, exactly
where huggingface_hub puts it, so other Hugging Face tools reuse it (and we
reuse theirs). HTTP goes through huggingface_hub's session and headers.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from localllm.config import Settings
from localllm.errors import FetchError, IntegrityError
from localllm.progress import ProgressReporter
from localllm.store.integrity import CHUNK

STALL_TIMEOUT_S = 30.0  # no byte for this long: drop the connection and resume
CONNECT_TIMEOUT_S = 15.0
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)  # consecutive failures without progress


class CachePaths:
    """Where one file of one repo lives in the Hugging Face cache."""

    def __init__(self, cache_dir: Path, repo: str, etag: str, commit: str, filename: str):
        self.repo_dir = cache_dir / ("models--" + repo.replace("/", "--"))
        self.blob = self.repo_dir / "blobs" / etag
        self.incomplete = self.blob.with_name(etag + ".incomplete")
        self.snapshot = self.repo_dir / "snapshots" / commit / filename
        self.lock = cache_dir / ".locks" / self.repo_dir.name / f"{etag}.lock"

    def link_snapshot(self) -> None:
        self.snapshot.parent.mkdir(parents=True, exist_ok=True)
        if self.snapshot.is_symlink() or self.snapshot.exists():
            self.snapshot.unlink()
        try:
            os.symlink(os.path.relpath(self.blob, self.snapshot.parent), self.snapshot)
        except OSError:  # no symlinks (e.g. Windows without developer mode): copy, as hf does
            import shutil

            shutil.copyfile(self.blob, self.snapshot)

    def record_ref(self, revision: str | None, commit: str) -> None:
        if revision and revision != commit:
            ref = self.repo_dir / "refs" / revision
            ref.parent.mkdir(parents=True, exist_ok=True)
            tmp = ref.with_name(ref.name + f".{os.getpid()}.tmp")
            tmp.write_text(commit)
            os.replace(tmp, ref)


class _Partial:
    """The growing .incomplete file and the running hash of its bytes."""

    def __init__(self, path: Path):
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0
        if path.exists():  # bytes from an earlier, interrupted run
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    self.digest.update(chunk)
                    self.size += len(chunk)

    def restart(self) -> None:
        self.path.write_bytes(b"")
        self.digest = hashlib.sha256()
        self.size = 0


def _transfer(url: str, partial: _Partial, progress: ProgressReporter) -> int:
    """Append the rest of the file to the partial; returns bytes received this call."""
    import httpx2
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    headers = build_hf_headers()
    if partial.size:
        headers["Range"] = f"bytes={partial.size}-"
    timeout = httpx2.Timeout(STALL_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    received = 0
    with get_session().stream(
        "GET", url, headers=headers, follow_redirects=True, timeout=timeout
    ) as response:
        hf_raise_for_status(response)
        if partial.size and response.status_code != 206:
            # The server ignored the Range header: start over rather than corrupt the file.
            progress.advance(-partial.size)
            partial.restart()
        with partial.path.open("ab") as fh:
            # Chunks as they arrive: a dropped connection loses nothing already received.
            for chunk in response.iter_bytes():
                fh.write(chunk)
                partial.digest.update(chunk)
                partial.size += len(chunk)
                received += len(chunk)
                progress.advance(len(chunk))
    return received


def download_blob(
    settings: Settings,
    *,
    url: str,
    repo: str,
    filename: str,
    etag: str,
    commit: str,
    size: int | None,
    revision: str | None,
    expected_sha256: str | None,
    progress: ProgressReporter,
) -> Path:
    """Fetch (or resume, or reuse) one hub file; returns its snapshot path once verified."""
    from filelock import FileLock

    paths = CachePaths(settings.hf_cache_dir, repo, etag, commit, filename)
    paths.blob.parent.mkdir(parents=True, exist_ok=True)
    paths.lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(paths.lock):
        if not paths.blob.exists():
            _fetch_verified(url, paths, size, expected_sha256, filename, progress)
        paths.link_snapshot()
        paths.record_ref(revision, commit)
    return paths.snapshot


def _retryable(exc: Exception) -> bool:
    """Network trouble and server hiccups; not 'no such repo' or 'not allowed'."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status >= 500 or status in (408, 429)
    return isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError))


def _fetch_verified(url, paths: CachePaths, size, expected_sha256, filename, progress) -> None:
    partial = _Partial(paths.incomplete)
    if partial.size:
        progress.message(f"resuming {filename} at {partial.size / 2**20:.0f} MiB")
    progress.start(f"downloading {filename}", size)
    progress.advance(partial.size)
    failures = 0
    try:
        while size is None or partial.size < size:
            try:
                received = _transfer(url, partial, progress)
            except Exception as exc:
                if not _retryable(exc):
                    raise
                failures += 1
                if failures > len(RETRY_DELAYS_S):
                    raise FetchError(
                        f"downloading {filename} keeps failing ({exc.__class__.__name__}): "
                        "run the same command again later; it resumes where it stopped"
                    ) from None
                delay = RETRY_DELAYS_S[failures - 1]
                progress.message(
                    f"connection lost ({exc.__class__.__name__}); resuming in {delay:.0f}s"
                )
                time.sleep(delay)
                continue
            if received:
                failures = 0
            if size is None or not received:
                break
    finally:
        progress.finish()
    _finish(paths, partial, size, expected_sha256, filename)


def _finish(paths: CachePaths, partial: _Partial, size, expected_sha256, filename) -> None:
    """Move the partial into place if it is whole and right; otherwise delete it."""
    actual = partial.digest.hexdigest()
    if (size is not None and partial.size != size) or (
        expected_sha256 and actual != expected_sha256
    ):
        paths.incomplete.unlink(missing_ok=True)
        raise IntegrityError(
            f"{filename} arrived corrupted (sha256 {actual[:12]}…, expected "
            f"{(expected_sha256 or '?')[:12]}…): it was deleted and nothing was registered; "
            "run the command again"
        )
    with paths.incomplete.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(paths.incomplete, paths.blob)
