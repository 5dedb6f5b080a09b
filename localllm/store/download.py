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
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from localllm.config import Settings
from localllm.errors import FetchError, IntegrityError
from localllm.progress import ProgressReporter
from localllm.store import paths
from localllm.store.integrity import CHUNK

STALL_TIMEOUT_S = 30.0  # no byte for this long: drop the connection and resume
CONNECT_TIMEOUT_S = 15.0
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)  # consecutive failures without progress


class CachePaths:
    """Where one file of one repo lives in the Hugging Face cache."""

    def __init__(self, cache_dir: Path, repo: str, etag: str, commit: str, filename: str):
        # All four come from the hub (or a mirror pretending to be it): none may lead out.
        repo_folder = paths.component("models--" + repo.replace("/", "--"), "repository")
        self.repo_dir = cache_dir / repo_folder
        self.blob = self.repo_dir / "blobs" / paths.component(etag, "ETag")
        self.incomplete = self.blob.with_name(etag + ".incomplete")
        snapshot_dir = self.repo_dir / "snapshots" / paths.component(commit, "commit")
        self.snapshot = paths.contained(snapshot_dir, filename, "file name")
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


class _NoCredentialsAcrossHosts(urllib.request.HTTPRedirectHandler):
    """Follow the hub's redirect to its CDN without carrying the token to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != req.host:
            new.remove_header("Authorization")
        return new


def _opener() -> urllib.request.OpenerDirector:
    import ssl

    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    return urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), _NoCredentialsAcrossHosts()
    )


def _transfer(url: str, partial: _Partial, progress: ProgressReporter) -> int:
    """Append the rest of the file to the partial; returns bytes received this call.

    The body is read with the standard library into a reused 1 MiB buffer: on a
    fast link this is twice as fast as huggingface_hub's httpx session (measured
    by benchmarks/pull_throughput.py), whose per-chunk parsing caps throughput.
    The hub's own headers (token, user agent) are still used.
    """
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers()
    if partial.size:
        headers["Range"] = f"bytes={partial.size}-"
    request = urllib.request.Request(url, headers=headers)
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    received = 0
    try:
        response = _opener().open(request, timeout=STALL_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and partial.size:  # we hold more than the file has: start over
            partial.restart()
            return 0
        raise _HTTPStatus(exc.code) from None
    with response:
        if partial.size and response.status != 206:
            # The server ignored the Range header: start over rather than corrupt the file.
            progress.advance(-partial.size)
            partial.restart()
        declared = int(response.headers.get("Content-Length") or -1)
        with partial.path.open("ab") as fh:
            while n := response.readinto(buffer):
                chunk = view[:n]
                fh.write(chunk)
                partial.digest.update(chunk)
                partial.size += n
                received += n
                progress.advance(n)
    if 0 <= received < declared:  # http.client reports a cut body as a quiet end of file
        raise http.client.IncompleteRead(b"", declared - received)
    return received


class _HTTPStatus(Exception):
    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


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
    """Network trouble and server hiccups; not 'no such file' or 'not allowed'."""
    if isinstance(exc, _HTTPStatus):
        return exc.status >= 500 or exc.status in (408, 429)
    # URLError (refused, DNS), timeouts, resets and cut-short bodies.
    return isinstance(exc, (urllib.error.URLError, OSError, http.client.HTTPException))


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
                if size is None:
                    break
                if not received:  # a server that answers with nothing must not loop forever
                    raise ConnectionError("the server sent no data")
                failures = 0
            except Exception as exc:
                if not _retryable(exc):
                    raise FetchError(
                        f"the hub refused {filename} ({exc}): check the name and your access"
                    ) from None
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
    # No fsync: the blob is content-addressed and was verified as it arrived; like
    # huggingface_hub and curl we leave flushing to the OS (it costs ~40% of throughput).
    os.replace(paths.incomplete, paths.blob)
