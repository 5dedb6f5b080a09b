"""The Hugging Face hub: list a repo's GGUF files, read file metadata and headers, download.

Every call goes through huggingface_hub (its endpoint setting, token, proxies
and cache layout), so files other Hugging Face tools downloaded are reused.
Downloads resume from huggingface_hub's `.incomplete` files, are retried with
backoff when the connection drops or stalls, and are verified against the
expected sha256 before anyone may register them. Hub errors become
LocalLLMErrors that say what to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from localllm.config import Settings
from localllm.errors import (
    FetchError,
    HubAccessError,
    InsufficientSpace,
    LocalLLMError,
    ModelNotFound,
    OfflineError,
)
from localllm.hardware import disk_free
from localllm.progress import ProgressReporter

QUANT_PATTERN = re.compile(
    r"(?<![A-Za-z0-9])(I?Q\d_[A-Z0-9_]+|Q\d_\d|F16|BF16|F32)(?![A-Za-z0-9])", re.IGNORECASE
)
SPLIT_PATTERN = re.compile(r"-\d{5}-of-\d{5}\.gguf$")
PREFERRED_QUANTS = ("q4_k_m", "q4_k_s", "q5_k_m", "q4_0", "q8_0")


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    filename: str
    revision: str | None  # what was asked for (None: the default branch)
    commit: str | None  # what the hub resolved it to
    size: int | None
    sha256: str | None  # the LFS hash, when the hub gives one
    url: str
    etag: str | None = None  # names the blob in the cache (the sha256 for LFS files)


def quiet_hub_client() -> None:
    """huggingface_hub logs its retries and draws tqdm bars on stderr; we report our own."""
    from huggingface_hub.utils import disable_progress_bars, logging

    logging.set_verbosity_error()
    disable_progress_bars()


def ensure_online(settings: Settings, what: str) -> None:
    quiet_hub_client()
    if settings.offline:
        raise OfflineError(
            f"{what} needs the Hugging Face hub, but localllm is offline "
            "(LOCALLLM_OFFLINE or HF_HUB_OFFLINE is set): unset it to download"
        )


@contextmanager
def hub_errors(settings: Settings, repo: str, filename: str | None = None) -> Iterator[None]:
    """Translate huggingface_hub's exceptions into one-line, actionable errors."""
    from huggingface_hub import errors

    site = (settings.hf_endpoint or "https://huggingface.co").rstrip("/")
    try:
        yield
    except errors.GatedRepoError:
        raise HubAccessError(
            f"{repo} is gated: accept its licence at {site}/{repo} and log in with "
            "`hf auth login` (or set HF_TOKEN)"
        ) from None
    except errors.RepositoryNotFoundError:
        raise ModelNotFound(
            f"no repository {repo!r} on the Hugging Face hub (or it is private): check the "
            "name, or find one with `localllm search TERM`"
        ) from None
    except errors.RevisionNotFoundError:
        raise ModelNotFound(f"{repo} has no such revision: check the commit or branch") from None
    except errors.EntryNotFoundError:
        raise ModelNotFound(
            f"{repo} has no file {filename!r}: list its files with `localllm search {repo}`"
        ) from None
    except errors.OfflineModeIsEnabled:
        raise OfflineError(
            f"{repo} needs the Hugging Face hub, but HF_HUB_OFFLINE is set: unset it to download"
        ) from None
    except LocalLLMError:
        raise
    except _transient_errors() as exc:
        raise FetchError(
            f"could not reach the hub for {repo} ({_short(exc)}): check your connection and "
            "try again; downloads resume where they stopped"
        ) from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0][:160]}" if text else exc.__class__.__name__


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Failures worth a retry: the network, not the request."""
    import httpx2
    from huggingface_hub import errors

    return (httpx2.TransportError, errors.HfHubHTTPError, OSError)


def list_files(settings: Settings, repo: str, revision: str | None = None) -> dict[str, int]:
    """Every file in a hub repo with its size."""
    ensure_online(settings, f"listing {repo}")
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    with hub_errors(settings, repo):
        entries = HfApi(endpoint=settings.hf_endpoint).list_repo_tree(
            repo, revision=revision, recursive=True
        )
        return {e.path: e.size for e in entries if isinstance(e, RepoFile)}


def list_gguf_files(settings: Settings, repo: str, revision: str | None = None) -> dict[str, int]:
    """GGUF files in a hub repo with their sizes."""
    files = list_files(settings, repo, revision)
    return {path: size for path, size in files.items() if path.lower().endswith(".gguf")}


def quant_of(filename: str) -> str | None:
    """'Llama-3.2-1B-Instruct-Q4_K_M.gguf' -> 'q4_k_m'."""
    found = QUANT_PATTERN.findall(Path(filename).stem)
    return found[-1].lower() if found else None


def choose_file(files: dict[str, int], repo: str, selector: str | None) -> str:
    """Pick the file a `hf:` spec means: a file name, a quant, or a sensible default."""
    candidates = {
        f: s for f, s in files.items() if "mmproj" not in f.lower() and not SPLIT_PATTERN.search(f)
    }
    if selector and selector.lower().endswith(".gguf"):
        if selector in files:
            return selector
        raise ModelNotFound(f"{repo} has no file {selector!r}: it has {', '.join(sorted(files))}")
    by_quant: dict[str, str] = {}
    for name in sorted(candidates):
        by_quant.setdefault(quant_of(name) or name, name)
    if not by_quant:
        detail = " (only split or projector files)" if files else ""
        raise ModelNotFound(f"{repo} has no single-file GGUF model{detail}")
    if selector:
        if selector.lower() in by_quant:
            return by_quant[selector.lower()]
        raise ModelNotFound(
            f"{repo} has no {selector} file: choose one of {', '.join(sorted(by_quant))}"
        )
    for quant in PREFERRED_QUANTS:
        if quant in by_quant:
            return by_quant[quant]
    return next(iter(by_quant.values()))


def _sha256_from_etag(etag: str | None) -> str | None:
    value = (etag or "").removeprefix("W/").strip('"')
    return value if re.fullmatch(r"[0-9a-f]{64}", value) else None


def remote_file(
    settings: Settings, repo: str, filename: str, revision: str | None = None
) -> RemoteFile:
    """Size, commit and LFS hash of a hub file (one HEAD request, no content)."""
    ensure_online(settings, f"{repo}/{filename}")
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo, filename, revision=revision, endpoint=settings.hf_endpoint)
    with hub_errors(settings, repo, filename):
        meta = get_hf_file_metadata(url, endpoint=settings.hf_endpoint)
    etag = (meta.etag or "").removeprefix("W/").strip('"') or None
    return RemoteFile(
        repo, filename, revision, meta.commit_hash, meta.size, _sha256_from_etag(etag), url, etag
    )


def range_fetcher(settings: Settings, remote: RemoteFile):
    """A function (start, length) -> bytes reading the remote file with HTTP Range requests."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    session = get_session()
    headers = build_hf_headers()

    def fetch(start: int, length: int) -> bytes:
        wanted = {**headers, "Range": f"bytes={start}-{start + length - 1}"}
        with hub_errors(settings, remote.repo, remote.filename):
            response = session.get(remote.url, headers=wanted, follow_redirects=True)
            hf_raise_for_status(response)
        if response.status_code != 206 and start > 0:
            raise FetchError(f"the server for {remote.repo} ignores Range requests")
        return response.content[:length]

    return fetch


def _check_space(settings: Settings, remote: RemoteFile) -> None:
    if remote.size and disk_free(settings.hf_cache_dir) < remote.size:
        raise InsufficientSpace(
            f"{remote.filename} needs {remote.size / 2**30:.1f} GiB but only "
            f"{disk_free(settings.hf_cache_dir) / 2**30:.1f} GiB is free in "
            f"{settings.hf_cache_dir}: free some space and try again"
        )


def download(
    settings: Settings,
    remote: RemoteFile,
    progress: ProgressReporter,
    *,
    expected_sha256: str | None = None,
) -> Path:
    """Download (resuming an earlier attempt) into the hub cache and verify; returns its path."""
    ensure_online(settings, f"{remote.repo}/{remote.filename}")
    if not (remote.etag and remote.commit):
        raise FetchError(
            f"the hub gave no ETag or commit for {remote.repo}/{remote.filename}: "
            "check HF_ENDPOINT points at a Hugging Face hub"
        )
    _check_space(settings, remote)
    from localllm.store.download import download_blob

    with hub_errors(settings, remote.repo, remote.filename):
        return download_blob(
            settings,
            url=remote.url,
            repo=remote.repo,
            filename=remote.filename,
            etag=remote.etag,
            commit=remote.commit,
            size=remote.size,
            revision=remote.revision,
            expected_sha256=expected_sha256 or remote.sha256,
            progress=progress,
        )
