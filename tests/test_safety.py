"""Paths from outside data stay inside their folder; bad specs and names are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from quantize_helpers import write_tiny_checkpoint

from localllm.config import Settings
from localllm.errors import UnsafePath
from localllm.progress import SilentProgress
from localllm.store.download import download_blob
from localllm.store.paths import contained, folder_for_name


@pytest.mark.parametrize(
    "field, value",
    [
        ("commit", "../../../../escaped"),
        ("commit", "a/../../b"),
        ("filename", "../../../../escaped.gguf"),
        ("filename", "/tmp/escaped.gguf"),
        ("filename", "sub/../../../escaped.gguf"),
        ("etag", "../../escaped"),
    ],
)
def test_a_hostile_hub_cannot_write_outside_the_cache(tmp_path, field, value):
    """X-Repo-Commit, the listed file name and the ETag come from the server."""
    settings = Settings.from_env({"LOCALLLM_HOME": str(tmp_path / "home")})
    values = {"repo": "acme/Starter-GGUF", "filename": "starter.gguf", "etag": "e" * 64,
              "commit": "c" * 40, field: value}  # fmt: skip
    with pytest.raises(UnsafePath, match="refusing"):
        download_blob(
            settings, url="http://127.0.0.1:9/never-fetched", size=10, revision=None,
            expected_sha256=None, progress=SilentProgress(), **values,
        )  # fmt: skip
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []


def test_a_sub_folder_in_a_listed_file_name_is_allowed(tmp_path):
    assert contained(tmp_path, "q4/model-00001-of-00002.gguf", "file name") == (
        tmp_path / "q4" / "model-00001-of-00002.gguf"
    )


def test_different_names_get_different_folders_inside():
    names = ["m:a", "m_a", "m%3Aa", "../../etc", ".hidden", "a/b", "a\\b", "Qwen2.5-7B"]
    folders = [folder_for_name(n) for n in names]
    assert len(set(folders)) == len(names)
    for folder in folders:
        assert "/" not in folder and "\\" not in folder and not folder.startswith(".")
    assert folder_for_name("Qwen2.5-7B") == "Qwen2.5-7B"  # readable where it can be


@pytest.mark.parametrize(
    "spec", ["hf:../x", "hf:acme/..", "hf:acme/-bad", "hf:acme/repo:../../x.gguf"]
)
def test_a_bad_hub_spec_is_a_one_line_error(fresh_home, spec):
    proc = run_cli("pull", spec, home=fresh_home, LOCALLLM_OFFLINE="1")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "internal error" not in lines[0]
    assert not (fresh_home / "data" / "registry.json").exists()


def test_a_quantize_name_cannot_lead_out_of_the_models_folder(fresh_home, tmp_path):
    write_tiny_checkpoint(tmp_path / "ckpt", "qwen2")
    proc = run_cli("quantize", str(tmp_path / "ckpt"), "-t", "f16", "--name", "../../../out",
                   home=fresh_home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    models = (fresh_home / "data" / "models").resolve()
    outputs = [p.resolve() for p in tmp_path.rglob("*.gguf")] + list(Path("/tmp").glob("out*.gguf"))
    assert outputs and all(models in p.parents for p in outputs), outputs
