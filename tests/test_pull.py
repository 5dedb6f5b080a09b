"""Pulling from a real HTTP hub on 127.0.0.1 with the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest
from conftest import HUB_STARTER, run_cli

from localllm.errors import FetchError, IntegrityError, LocalLLMError, OfflineError
from localllm.gguf_meta import read_gguf_info
from localllm.progress import SilentProgress
from localllm.store import download
from localllm.store import hub as hub_module
from localllm.store.fit import estimate_memory
from localllm.store.pull import pull, pull_target, remote_fit
from localllm.store.registry import Registry

REPO, FILE = HUB_STARTER


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def content_gets(hub, filename=FILE):
    """Downloads of the file: no Range or an open-ended one (header peeks are bounded)."""
    return [
        r
        for r in hub.requests
        if r.is_content_get and r.filename == filename and (not r.range or r.range.endswith("-"))
    ]


def registry_json(home: Path) -> dict:
    path = home / "data" / "registry.json"
    return json.loads(path.read_text())["models"] if path.exists() else {}


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(download, "RETRY_DELAYS_S", (0.0, 0.0, 0.0))


class InterruptAfter(SilentProgress):
    """A progress reporter that presses Ctrl-C once `limit` bytes have arrived."""

    def __init__(self, limit: int):
        self.limit, self.seen = limit, 0

    def advance(self, amount: int) -> None:
        self.seen += amount
        if self.seen >= self.limit:
            raise KeyboardInterrupt


def test_pull_by_catalogue_name_registers_a_verified_file(
    hub, fresh_home, starter_path, starter_home
):
    proc = run_cli("pull", "smollm2-135m:q4_k_m", home=fresh_home, HF_ENDPOINT=hub.url)
    assert proc.returncode == 0, proc.stderr
    entry = registry_json(fresh_home)["smollm2-135m:q4_k_m"]
    stored = Path(entry["path"])
    # Hugging Face's own cache layout: a snapshot link to a blob named by the sha256.
    assert stored.is_symlink() and stored.resolve().name == entry["sha256"]
    assert "models--bartowski--SmolLM2-135M-Instruct-GGUF" in entry["path"]
    assert sha256(stored) == sha256(starter_path)
    # Once stored, it runs with the network forbidden.
    ask = ("--temperature", "0", "--max-tokens", "24", "--no-save", "What is a GGUF file?")
    run = run_cli("run", "-m", "smollm2-135m:q4_k_m", *ask, home=fresh_home, LOCALLLM_OFFLINE="1")
    assert run.returncode == 0, run.stderr
    # The hub served the starter's bytes under this name: the same model, the same answer.
    assert run.stdout.strip() and run.stdout == run_cli("run", *ask, home=starter_home).stdout


def test_pull_by_hf_spec_picks_the_quant_and_skips_projectors(hub, fresh_home):
    proc = run_cli("pull", "hf:acme/Starter-GGUF:Q8_0", home=fresh_home, HF_ENDPOINT=hub.url)
    assert proc.returncode == 0, proc.stderr
    assert "hf:acme/Starter-GGUF:starter-Q8_0.gguf" in registry_json(fresh_home)
    default = run_cli("pull", "hf:acme/Starter-GGUF", home=fresh_home, HF_ENDPOINT=hub.url)
    assert default.returncode == 0, default.stderr
    assert "hf:acme/Starter-GGUF:starter-Q4_K_M.gguf" in registry_json(fresh_home)
    again = run_cli("pull", "hf:acme/Starter-GGUF:Q8_0", home=fresh_home, HF_ENDPOINT=hub.url)
    assert "already downloaded" in again.stdout


def test_a_transfer_cut_in_the_middle_resumes_in_the_same_pull(hub, hub_settings):
    size = hub_module.remote_file(hub_settings, REPO, FILE).size
    hub.reset_log()
    target = pull_target(hub_settings, "smollm2-135m:q4_k_m")
    remote = hub_module.remote_file(hub_settings, REPO, FILE)
    hub.cut_next_download(REPO, FILE, after_bytes=size // 2)
    path = hub_module.download(hub_settings, remote, SilentProgress())
    gets = content_gets(hub)
    assert gets[0].fault and gets[0].body_bytes_sent < size
    resumed_at = int(gets[1].range.removeprefix("bytes=").removesuffix("-"))
    assert size // 3 < resumed_at <= gets[0].body_bytes_sent
    assert gets[1].body_bytes_sent == size - resumed_at  # only the rest was fetched
    assert sha256(path) == remote.sha256 and target.filename == FILE


def test_an_interrupted_pull_resumes_where_it_stopped(hub, hub_settings):
    target = pull_target(hub_settings, "smollm2-135m:q4_k_m")
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C half way through
        pull(hub_settings, target, InterruptAfter(40_000_000))
    assert not Registry(hub_settings).all()
    partial = list(hub_settings.hf_cache_dir.rglob("*.incomplete"))
    assert len(partial) == 1
    kept = partial[0].stat().st_size
    assert kept >= 40_000_000
    hub.reset_log()
    entry = pull(hub_settings, target, SilentProgress())
    (second,) = content_gets(hub)
    assert second.range == f"bytes={kept}-"
    assert second.body_bytes_sent == entry.size - kept
    assert sha256(Path(entry.path)) == entry.sha256
    assert not list(hub_settings.hf_cache_dir.rglob("*.incomplete"))


def test_a_stalled_server_is_retried(hub, hub_settings, monkeypatch):
    monkeypatch.setattr(download, "STALL_TIMEOUT_S", 0.5)
    target = pull_target(hub_settings, "smollm2-135m:q4_k_m")
    remote = hub_module.remote_file(hub_settings, REPO, FILE)
    hub.reset_log()
    hub.stall_next_download(REPO, FILE, seconds=5)
    path = hub_module.download(hub_settings, remote, SilentProgress())
    gets = content_gets(hub)
    assert gets[0].fault.startswith("stall") and len(gets) == 2
    assert sha256(path) == remote.sha256 and target.key == "smollm2-135m:q4_k_m"


def test_a_server_that_keeps_failing_gives_up_with_a_clear_error(hub, hub_settings):
    remote = hub_module.remote_file(hub_settings, REPO, FILE)
    hub.cut_next_download(REPO, FILE, after_bytes=0, times=10)
    with pytest.raises(FetchError, match="resumes where it stopped"):
        hub_module.download(hub_settings, remote, SilentProgress())


def test_a_corrupted_transfer_is_rejected_and_never_registered(hub, fresh_home, starter_home):
    hub.corrupt_always(REPO, FILE)
    proc = run_cli("pull", "smollm2-135m:q4_k_m", home=fresh_home, HF_ENDPOINT=hub.url)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "corrupted" in errors[0] and "nothing was registered" in errors[0]
    assert "Traceback" not in proc.stderr
    assert registry_json(fresh_home) == {}
    blobs = list((fresh_home / "cache" / "huggingface" / "hub").rglob("blobs/*"))
    assert blobs == []  # neither a bad blob nor a partial file is left


def test_a_failed_pull_leaves_the_good_copy_alone(hub, hub_settings, starter_path):
    target = pull_target(hub_settings, "smollm2-135m:q4_k_m")
    good = pull(hub_settings, target, SilentProgress())
    # The hub now serves corrupted bytes for the same file under another repo name.
    hub.add_file("acme/Mirror-GGUF", FILE, starter_path)
    hub.corrupt_always("acme/Mirror-GGUF", FILE)
    mirror = pull_target(hub_settings, f"hf:acme/Mirror-GGUF:{FILE}")
    with pytest.raises(IntegrityError):
        pull(hub_settings, mirror, SilentProgress())
    assert sha256(Path(good.path)) == good.sha256
    assert set(Registry(hub_settings).all()) == {"smollm2-135m:q4_k_m"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hf:nobody/no-such-repo", "no repository 'nobody/no-such-repo'"),
        ("hf:acme/Starter-GGUF:missing.gguf", "has no file 'missing.gguf'"),
        ("hf:acme/Starter-GGUF:Q2_K", "has no Q2_K file: choose one of q4_k_m, q8_0"),
        ("hf:secret/Gated-GGUF:gated.gguf", "is gated: accept its licence"),
    ],
)
def test_hub_errors_are_one_line_and_say_what_to_do(hub, fresh_home, starter_path, spec, message):
    hub.add_file("secret/Gated-GGUF", "gated.gguf", starter_path)
    hub.add_gated_repo("secret/Gated-GGUF")
    proc = run_cli("pull", spec, home=fresh_home, HF_ENDPOINT=hub.url)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_remote_fit_estimate_matches_the_local_file_and_reads_only_the_header(
    hub, hub_settings, starter_path
):
    remote = hub_module.remote_file(hub_settings, REPO, FILE)
    hub.reset_log()
    verdict, _ = remote_fit(hub_settings, remote, 4096)
    local_info = read_gguf_info(starter_path)
    assert verdict.estimate == estimate_memory(local_info, 4096)
    fetched = sum(r.body_bytes_sent for r in hub.requests)
    assert fetched <= 1.25 * local_info.data_offset
    assert fetched < remote.size / 10


def test_pull_refuses_a_model_that_will_not_fit(hub, hub_settings, monkeypatch):
    from localllm import hardware

    monkeypatch.setattr(hardware, "memory", lambda: hardware.Memory(2**30, 50 * 2**20))
    with pytest.raises(LocalLLMError, match="will not fit"):
        pull(hub_settings, pull_target(hub_settings, "smollm2-135m:q4_k_m"), SilentProgress())
    assert not Registry(hub_settings).all()
    assert not list(hub_settings.hf_cache_dir.rglob("blobs/*"))  # nothing was downloaded


def test_pull_fit_picks_the_largest_quant_that_fits(hub, fresh_home, starter_path, tmp_path):
    # Serve a bigger q8_0: the starter file plus padding.
    big = tmp_path / "big.gguf"
    big.write_bytes(starter_path.read_bytes() + b"\0" * 50_000_000)
    hub.add_file(REPO, "SmolLM2-135M-Instruct-Q8_0.gguf", big)
    proc = run_cli("pull", "smollm2-135m", "--fit", home=fresh_home, HF_ENDPOINT=hub.url)
    assert "smollm2-135m:q8_0 is the largest quant that fits" in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert "smollm2-135m:q8_0" in registry_json(fresh_home)


def test_pull_fit_steps_down_when_the_largest_does_not_fit(hub, hub_settings, starter_path,
                                                           tmp_path, monkeypatch):  # fmt: skip
    from localllm import hardware
    from localllm.catalog import load_catalog
    from localllm.store.pull import largest_fitting_quant

    big = tmp_path / "big.gguf"
    big.write_bytes(starter_path.read_bytes() + b"\0" * 400_000_000)
    hub.add_file(REPO, "SmolLM2-135M-Instruct-Q8_0.gguf", big)
    # Room for the ~100 MB quants and their 8k-context KV cache, not for the ~500 MB one.
    monkeypatch.setattr(hardware, "memory", lambda: hardware.Memory(2**31, 750 * 2**20))
    target = largest_fitting_quant(hub_settings, load_catalog()["smollm2-135m"], None,
                                   SilentProgress())  # fmt: skip
    assert target.key in ("smollm2-135m:q4_k_m", "smollm2-135m:q4_1")


def test_offline_never_opens_a_socket(hub_settings, monkeypatch, starter_home):
    from dataclasses import replace

    def refuse(*args, **kwargs):
        raise AssertionError("a socket was opened while offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    offline = replace(hub_settings, offline=True)
    for ref in ("smollm2-135m:q4_k_m", "hf:acme/Starter-GGUF"):
        with pytest.raises(OfflineError, match="offline"):
            pull(offline, pull_target(offline, ref), SilentProgress())
    from localllm.store.inspect import search_models

    assert search_models(offline, "smol")["catalog"]


def test_offline_cli_pull_says_so(fresh_home):
    proc = run_cli("pull", "qwen2.5-1.5b", home=fresh_home, LOCALLLM_OFFLINE="1")
    assert proc.returncode == 1 and "offline" in proc.stderr
    proc = run_cli("pull", "qwen2.5-1.5b", home=fresh_home, HF_HUB_OFFLINE="1")
    assert proc.returncode == 1 and "offline" in proc.stderr


def test_search_lists_catalogue_and_hub_repos(hub, fresh_home):
    proc = run_cli("search", "starter", "--json", home=fresh_home, HF_ENDPOINT=hub.url)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [r["id"] for r in result["hub"]] == ["acme/Starter-GGUF"]
    assert any(m["name"] == "smollm2-135m" for m in result["catalog"])


def test_run_with_an_hf_spec_pulls_on_first_use_then_works_offline(hub, fresh_home):
    ask = ("run", "-m", "hf:acme/Starter-GGUF:Q8_0", "--temperature", "0", "--max-tokens", "24",
           "Which city is the capital of France?")  # fmt: skip
    first = run_cli(*ask, home=fresh_home, HF_ENDPOINT=hub.url)
    assert first.returncode == 0, first.stderr
    assert "downloading starter-Q8_0.gguf" in first.stderr and first.stdout.strip()
    offline = run_cli(*ask, home=fresh_home, LOCALLLM_OFFLINE="1")
    assert offline.returncode == 0, offline.stderr
    assert "downloading" not in offline.stderr
    assert offline.stdout == first.stdout  # the stored model, deterministic at temperature 0
