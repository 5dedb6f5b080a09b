"""The fake hub (tests/hubserver.py) driven by the real huggingface_hub client.

These tests pin down both the fixture and the client behaviour that localllm relies on
(huggingface_hub 2.4): how downloads resume, what is verified, which exception each hub error
becomes. If a client upgrade changes any of that, a test here should say so first.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import httpx2
import hubserver
import pytest
from hubserver import FakeHub, serve_hub
from huggingface_hub import (
    HfApi,
    constants,
    file_download,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = "acme/Tiny-Model-GGUF"
FILE = "tiny.Q4_K_M.gguf"
SIZE = 3_000_000


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    # An offline-first developer may export HF_HUB_OFFLINE=1; these tests talk to 127.0.0.1 only.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.gguf"
    path.write_bytes(os.urandom(SIZE))
    return path


@pytest.fixture
def hub(payload: Path):
    with serve_hub() as hub:
        hub.add_file(REPO, FILE, payload)
        yield hub


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


@pytest.fixture
def no_retry_pause(monkeypatch):
    """Skip the 1 s pause http_get takes before each in-call retry (file_download.time.sleep)."""
    pauses: list[float] = []
    monkeypatch.setattr(file_download, "time", types.SimpleNamespace(sleep=pauses.append))
    return pauses


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download(hub: FakeHub, cache: Path, filename: str = FILE, repo: str = REPO, **kwargs) -> Path:
    path = hf_hub_download(repo, filename, cache_dir=cache, endpoint=hub.url, token=False, **kwargs)
    return Path(path)


def content_gets(hub: FakeHub) -> list[hubserver.Request]:
    return [r for r in hub.requests if r.is_content_get]


def incomplete_files(cache: Path) -> list[Path]:
    return list(cache.rglob("*.incomplete"))


# ---- the happy path ------------------------------------------------------------------------------


def test_download_gives_the_bytes_in_a_blob_named_by_sha256(hub, payload, cache):
    path = download(hub, cache)

    expected = sha256(payload)
    assert sha256(path) == expected
    assert path.resolve().name == expected  # the cache blob is named by X-Linked-Etag
    assert path.parent.name == hub.commit_sha(REPO)  # snapshot folder from X-Repo-Commit
    # One HEAD for the metadata, one plain GET for the content: the Xet path is never taken.
    assert [(r.method, r.status) for r in hub.requests] == [("HEAD", 200), ("GET", 200)]
    assert hub.bytes_sent(REPO, FILE) == SIZE


def test_second_download_is_served_from_the_cache(hub, cache):
    download(hub, cache)
    hub.reset_log()
    download(hub, cache)
    assert [r.method for r in hub.requests] == ["HEAD"]
    assert hub.bytes_sent() == 0


def test_file_metadata_carries_the_lfs_headers(hub, payload):
    metadata = get_hf_file_metadata(hf_hub_url(REPO, FILE, endpoint=hub.url), token=False)
    assert metadata.etag == sha256(payload)
    assert metadata.size == SIZE
    assert metadata.commit_hash == hub.commit_sha(REPO)
    assert metadata.xet_file_data is None


def test_model_info_lists_files_and_their_lfs_sha256_on_request(hub, payload):
    api = HfApi(endpoint=hub.url, token=False)

    plain = api.model_info(REPO)
    assert plain.id == REPO and plain.sha == hub.commit_sha(REPO) and plain.gated is False
    assert [s.rfilename for s in plain.siblings] == [FILE]
    assert plain.siblings[0].lfs is None  # as on the hub: sizes only with files_metadata

    sibling = api.model_info(REPO, files_metadata=True).siblings[0]
    assert (sibling.size, sibling.lfs.sha256, sibling.lfs.size) == (SIZE, sha256(payload), SIZE)

    pinned = api.model_info(REPO, revision=hub.commit_sha(REPO), expand=["sha"])
    assert pinned.sha == hub.commit_sha(REPO) and pinned.siblings is None


def test_tree_and_file_list_show_lfs_sha256(hub, payload):
    hub.add_file(REPO, "extra/README.md", b"# tiny\n")
    api = HfApi(endpoint=hub.url, token=False)

    top = {entry.path: entry for entry in api.list_repo_tree(REPO)}
    assert set(top) == {"extra", FILE}
    assert top[FILE].lfs.sha256 == sha256(payload) and top[FILE].size == SIZE

    nested = [entry.path for entry in api.list_repo_tree(REPO, path_in_repo="extra")]
    assert nested == ["extra/README.md"]
    assert api.list_repo_files(REPO) == ["extra/README.md", FILE]


def test_list_models_search_is_a_case_insensitive_substring(hub):
    hub.add_file("other/unrelated", "x.gguf", b"x")
    api = HfApi(endpoint=hub.url, token=False)
    assert [m.id for m in api.list_models(search="tiny-model")] == [REPO]
    assert [m.id for m in api.list_models(search="GGUF", author="acme")] == [REPO]
    assert list(api.list_models(search="nothing-like-it")) == []


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=10-19", 10, 19),
        (f"bytes={SIZE - 5}-", SIZE - 5, SIZE - 1),
        ("bytes=-7", SIZE - 7, SIZE - 1),
    ],
)
def test_range_get_returns_exactly_the_asked_bytes(hub, payload, header, start, end):
    request = urllib.request.Request(hf_hub_url(REPO, FILE, endpoint=hub.url))
    request.add_header("Range", header)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert body == payload.read_bytes()[start : end + 1]
    assert hub.bytes_sent(REPO, FILE) == end + 1 - start


def test_range_past_the_end_is_416(hub):
    request = urllib.request.Request(hf_hub_url(REPO, FILE, endpoint=hub.url))
    request.add_header("Range", f"bytes={SIZE}-")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 416
    assert caught.value.headers["Content-Range"] == f"bytes */{SIZE}"


# ---- interrupted downloads: how huggingface_hub 2.4 resumes --------------------------------------


def test_cut_download_resumes_with_a_range_inside_the_same_call(
    hub, payload, cache, monkeypatch, no_retry_pause
):
    # http_get keeps only whole DOWNLOAD_CHUNK_SIZE chunks (10 MiB by default) of a broken
    # stream; a small chunk lets a 3 MB file show the resume.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    cut_at = 16 * 64 * 1024
    hub.cut_next_download(REPO, FILE, after_bytes=cut_at)

    path = download(hub, cache)

    assert sha256(path) == sha256(payload)
    first, second = content_gets(hub)
    assert (first.fault, first.body_bytes_sent) == (f"cut:{cut_at}", cut_at)
    assert (second.range, second.status) == (f"bytes={cut_at}-", 206)
    assert second.body_bytes_sent == SIZE - cut_at
    assert no_retry_pause == [1]


def test_cut_before_the_first_client_chunk_restarts_from_zero(hub, payload, cache, no_retry_pause):
    # With the default 10 MiB chunk nothing of a 1 MB partial body reaches the file.
    hub.cut_next_download(REPO, FILE, after_bytes=1_000_000)

    path = download(hub, cache)

    assert sha256(path) == sha256(payload)
    assert [r.range for r in content_gets(hub)] == [None, None]
    assert hub.bytes_sent(REPO, FILE) == 1_000_000 + SIZE


def test_repeated_cuts_fail_and_the_next_call_starts_over(hub, payload, cache, no_retry_pause):
    # One try plus 5 retries without progress, then http_get gives up.
    hub.cut_next_download(REPO, FILE, after_bytes=1000, times=6)

    with pytest.raises(httpx2.RemoteProtocolError):
        download(hub, cache)
    assert len(content_gets(hub)) == 6
    # The partial file is per call (<etag>.<random>.incomplete) and deleted on failure.
    assert incomplete_files(cache) == []

    hub.reset_log()
    path = download(hub, cache)
    assert sha256(path) == sha256(payload)
    assert [r.range for r in content_gets(hub)] == [None]  # no resume across calls
    assert hub.bytes_sent(REPO, FILE) == SIZE


# ---- corrupted and stalled downloads -------------------------------------------------------------


def test_corrupt_download_is_not_detected_by_hf_hub_download(hub, payload, cache):
    hub.corrupt_next_download(REPO, FILE)

    path = download(hub, cache)

    # Only the size is checked: the wrong bytes land in a blob named by the right sha256.
    assert path.stat().st_size == SIZE
    assert sha256(path) != sha256(payload)
    assert path.resolve().name == sha256(payload)
    # The client can find out, but only when asked.
    report = HfApi(endpoint=hub.url, token=False).verify_repo_checksums(REPO, cache_dir=cache)
    assert [m["path"] for m in report.mismatches] == [FILE]


def test_corrupt_always_spoils_every_download_until_turned_off(hub, payload, cache):
    hub.corrupt_always(REPO, FILE)
    assert sha256(download(hub, cache)) != sha256(payload)
    assert sha256(download(hub, cache, force_download=True)) != sha256(payload)

    hub.corrupt_always(REPO, FILE, on=False)
    assert sha256(download(hub, cache, force_download=True)) == sha256(payload)
    assert [r.fault for r in content_gets(hub)] == ["corrupt", "corrupt", None]


def test_a_stall_is_retried_after_the_download_timeout(hub, payload, cache, monkeypatch):
    # The GET timeout is read at call time from constants.HF_HUB_DOWNLOAD_TIMEOUT (the env
    # variable of that name only counts at import, and only as an int).
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.5)
    hub.stall_next_download(REPO, FILE, seconds=30)

    started = time.monotonic()
    path = download(hub, cache)

    assert sha256(path) == sha256(payload)
    assert time.monotonic() - started >= 0.5
    stalled, served = content_gets(hub)
    assert (stalled.fault, stalled.status, stalled.body_bytes_sent) == ("stall:30", None, 0)
    assert served.status == 200


def test_stalls_on_every_attempt_raise_a_read_timeout(hub, cache, monkeypatch, no_retry_pause):
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.2)
    hub.stall_next_download(REPO, FILE, seconds=30, times=6)

    with pytest.raises(httpx2.ReadTimeout):
        download(hub, cache)
    assert len(content_gets(hub)) == 6
    assert incomplete_files(cache) == []


def test_stop_does_not_wait_for_a_stalled_answer(payload):
    hub = FakeHub().start()
    hub.add_file(REPO, FILE, payload)
    hub.stall_next_download(REPO, FILE, seconds=60)
    port = int(hub.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(f"GET /{REPO}/resolve/main/{FILE} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        while not content_gets(hub):
            time.sleep(0.01)
        started = time.monotonic()
        hub.stop()
        assert time.monotonic() - started < 2
        assert client.recv(1024) == b""  # hung up without an answer


# ---- hub errors and the exceptions the client makes of them --------------------------------------


def test_unknown_repo_is_repository_not_found(hub, cache):
    with pytest.raises(RepositoryNotFoundError) as caught:
        download(hub, cache, repo="acme/no-such-repo")
    assert not isinstance(caught.value, GatedRepoError)
    assert caught.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token=False).model_info("acme/no-such-repo")


def test_missing_file_is_remote_entry_not_found(hub, cache):
    with pytest.raises(RemoteEntryNotFoundError) as caught:
        download(hub, cache, filename="missing.gguf")
    assert isinstance(caught.value, EntryNotFoundError)
    # The hub names the commit in the 404, so the client remembers the miss.
    no_exist = cache / "models--acme--Tiny-Model-GGUF" / ".no_exist" / hub.commit_sha(REPO)
    assert (no_exist / "missing.gguf").exists()


def test_unknown_revision_is_revision_not_found(hub, cache):
    with pytest.raises(RevisionNotFoundError):
        download(hub, cache, revision="v9")


def test_gated_repo_content_is_gated_repo_error(hub, payload, cache):
    hub.add_file("meta/gated", FILE, payload)
    hub.add_gated_repo("meta/gated")

    with pytest.raises(GatedRepoError) as caught:
        download(hub, cache, repo="meta/gated")
    assert caught.value.response.status_code == 401
    assert "restricted" in str(caught.value)
    # As on the hub, the metadata stays public.
    api = HfApi(endpoint=hub.url, token=False)
    assert api.model_info("meta/gated").gated == "manual"
    assert api.list_repo_files("meta/gated") == [FILE]


def test_gate_metadata_makes_every_request_gated(hub):
    hub.add_gated_repo("meta/locked", gate_metadata=True)
    with pytest.raises(GatedRepoError):
        HfApi(endpoint=hub.url, token=False).model_info("meta/locked")


# ---- fixture housekeeping ------------------------------------------------------------------------


def test_a_file_added_to_several_repos_is_hashed_once(hub, payload, monkeypatch):
    hashed: list[Path] = []
    real_hash = hubserver._hash_file
    monkeypatch.setattr(hubserver, "_hash_file", lambda p: hashed.append(p) or real_hash(p))
    fresh = payload.with_name("fresh.gguf")
    fresh.write_bytes(b"fresh bytes")

    for repo in ("a/one", "b/two", "c/three"):
        hub.add_file(repo, "model.gguf", fresh)

    assert hashed == [fresh]
    assert hub.sha256("c/three", "model.gguf") == sha256(fresh)


def test_a_subprocess_finds_the_hub_through_hf_endpoint(hub, payload, tmp_path):
    script = (
        f"from huggingface_hub import hf_hub_download; print(hf_hub_download({REPO!r}, {FILE!r}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(tmp_path / "sub-cache"), HF_HUB_OFFLINE="0")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert sha256(Path(result.stdout.strip())) == sha256(payload)
