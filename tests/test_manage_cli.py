"""list, show, import and rm on a real home with real model files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from localllm.catalog import load_catalog


@pytest.fixture
def home_with_starter(fresh_home, starter_home):
    """A private copy of the starter home, so tests may add and remove models."""
    shutil.copytree(starter_home, fresh_home)
    return fresh_home


def listed(home) -> dict:
    proc = run_cli("list", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row for row in json.loads(proc.stdout)}


def test_list_shows_what_is_stored(home_with_starter):
    row = listed(home_with_starter)["smollm2-135m:q4_1"]
    assert row["quant"] == "q4_1" and row["architecture"] == "llama"
    assert row["context_length"] == 8192 and row["size"] == 98362432
    assert row["source"].startswith("package:")
    table = run_cli("list", home=home_with_starter).stdout
    assert "smollm2-135m:q4_1" in table and "LAST USED" in table


def test_list_on_an_empty_home_says_how_to_start(fresh_home):
    proc = run_cli("list", home=fresh_home)
    assert proc.returncode == 0 and "localllm pull" in proc.stdout
    assert json.loads(run_cli("list", "--json", home=fresh_home).stdout) == []


def test_show_reports_metadata_and_memory(home_with_starter):
    proc = run_cli("show", "smollm2-135m", "--json", home=home_with_starter)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["architecture"] == "llama" and r["quant"] == "Q4_1"
    assert r["context_length"] == 8192 and r["chat_template"] is True
    assert r["license"] == "apache-2.0" and r["parameters"].endswith("M")
    assert r["tensor_types"]["Q4_1"] > 100
    contexts = [m["n_ctx"] for m in r["memory"]]
    assert contexts == [2048, 8192]
    small, full = r["memory"]
    assert small["kv_cache"] * 4 == full["kv_cache"]  # KV cache grows with the context
    assert small["weights"] == full["weights"] and full["total"] > full["weights"]


def test_show_of_a_catalogue_model_does_not_download(fresh_home):
    proc = run_cli("show", "qwen2.5-3b", "--json", home=fresh_home, LOCALLLM_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["downloaded"] is False and r["commercial_use"] is False
    assert "q4_k_m" in r["quants"]


def test_import_copies_validates_and_rm_deletes_the_copy(home_with_starter, starter_path):
    proc = run_cli("import", str(starter_path), "--name", "mine", home=home_with_starter)
    assert proc.returncode == 0, proc.stderr
    row = listed(home_with_starter)["mine"]
    assert row["path"] != str(starter_path) and row["path"].startswith(str(home_with_starter))
    ask = ("--temperature", "0", "--max-tokens", "24", "--no-save", "What is a GGUF file?")
    run = run_cli("run", "-m", "mine", *ask, home=home_with_starter)
    original = run_cli("run", "-m", "smollm2-135m", *ask, home=home_with_starter)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() and run.stdout == original.stdout  # the same bytes, the same model
    again = run_cli("import", str(starter_path), "--name", "mine", home=home_with_starter)
    assert again.returncode == 1 and "already registered" in again.stderr
    gone = run_cli("rm", "mine", "-y", home=home_with_starter)
    assert gone.returncode == 0, gone.stderr
    assert "mine" not in listed(home_with_starter)
    assert not (home_with_starter / "data" / "models" / "imported" / "mine").exists()
    assert starter_path.exists()


def test_names_that_differ_never_share_a_folder(home_with_starter, starter_path):
    for name in ("m:a", "m_a", "../../escape"):
        proc = run_cli("import", str(starter_path), "--name", name, home=home_with_starter)
        assert proc.returncode == 0, proc.stderr
    rows = listed(home_with_starter)
    paths = {rows[n]["path"] for n in ("m:a", "m_a", "../../escape")}
    assert len(paths) == 3
    models = (home_with_starter / "data" / "models").resolve()
    for path in paths:
        assert models in Path(path).resolve().parents
    assert run_cli("rm", "m:a", "-y", home=home_with_starter).returncode == 0
    assert Path(rows["m_a"]["path"]).exists()  # the other name's file is untouched


def test_rm_of_a_linked_file_inside_the_models_folder_leaves_it(home_with_starter, starter_path):
    """Ownership is what the registry recorded, not where the file happens to lie."""
    own = home_with_starter / "data" / "models" / "my-own.gguf"
    shutil.copyfile(starter_path, own)
    proc = run_cli("import", str(own), "--name", "linked", "--link", home=home_with_starter)
    assert proc.returncode == 0, proc.stderr
    gone = run_cli("rm", "linked", "-y", home=home_with_starter)
    assert gone.returncode == 0, gone.stderr
    assert own.exists() and "left in place" in gone.stdout + gone.stderr


def test_rm_keeps_a_file_another_entry_still_uses(home_with_starter):
    starter = listed(home_with_starter)["smollm2-135m:q4_1"]["path"]
    proc = run_cli("import", starter, "--name", "alias", "--link", home=home_with_starter)
    assert proc.returncode == 0, proc.stderr
    gone = run_cli("rm", "smollm2-135m:q4_1", "-y", home=home_with_starter)
    assert gone.returncode == 0, gone.stderr
    assert Path(starter).exists() and "alias still uses it" in gone.stdout + gone.stderr
    assert run_cli("rm", "alias", "-y", home=home_with_starter).returncode == 0
    assert Path(starter).exists()  # a --link entry never owned it


def test_a_registry_with_keys_from_a_newer_version_is_read_and_kept(home_with_starter):
    registry = home_with_starter / "data" / "registry.json"
    data = json.loads(registry.read_text())
    data["models"]["smollm2-135m:q4_1"]["pinned"] = True  # written by some later localllm
    registry.write_text(json.dumps(data))
    assert "smollm2-135m:q4_1" in listed(home_with_starter)
    proc = run_cli("run", "--no-save", "--max-tokens", "2", "hi", home=home_with_starter)
    assert proc.returncode == 0, proc.stderr  # touching last_used rewrote the registry...
    after = json.loads(registry.read_text())["models"]["smollm2-135m:q4_1"]
    assert after["pinned"] is True and after["last_used"]  # ...and kept the key


def test_rm_of_a_linked_import_keeps_the_users_file(home_with_starter, starter_path, tmp_path):
    mine = tmp_path / "Keep-Me.Q4_1.gguf"
    shutil.copyfile(starter_path, mine)
    proc = run_cli("import", str(mine), "--link", home=home_with_starter)
    assert proc.returncode == 0, proc.stderr
    assert listed(home_with_starter)["keep-me.q4_1"]["path"] == str(mine)
    gone = run_cli("rm", "keep-me.q4_1", "-y", home=home_with_starter)
    assert gone.returncode == 0 and "left in place" in gone.stdout
    assert mine.exists()


def test_import_refuses_a_bad_file_and_stores_nothing(home_with_starter, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 10)
    proc = run_cli("import", str(bad), home=home_with_starter)
    assert proc.returncode == 1 and proc.stderr.startswith("error:")
    assert set(listed(home_with_starter)) == {"smollm2-135m:q4_1"}
    assert not (home_with_starter / "data" / "models" / "imported").exists()


def test_rm_asks_first_and_refuses_without_a_terminal(home_with_starter):
    proc = run_cli("rm", "smollm2-135m", home=home_with_starter)
    assert proc.returncode == 2 and "-y" in proc.stderr
    assert "smollm2-135m:q4_1" in listed(home_with_starter)


def test_rm_of_an_unknown_model_is_a_clear_error(fresh_home):
    proc = run_cli("rm", "nothing-here", "-y", home=fresh_home)
    assert proc.returncode == 1 and "localllm list" in proc.stderr


def test_pulled_hub_model_is_removed_from_the_hub_cache(hub, fresh_home):
    assert (
        run_cli(
            "pull", "hf:acme/Starter-GGUF:Q8_0", home=fresh_home, HF_ENDPOINT=hub.url
        ).returncode
        == 0
    )
    blobs = list((fresh_home / "cache" / "huggingface" / "hub").rglob("blobs/*"))
    assert len(blobs) == 1
    proc = run_cli("rm", "hf:acme/Starter-GGUF:Q8_0", "-y", home=fresh_home)
    assert proc.returncode == 0, proc.stderr
    assert not blobs[0].exists()
    assert listed(fresh_home) == {}


def test_the_catalogue_covers_the_promised_families():
    catalog = load_catalog()
    assert len(catalog) >= 15
    families = {spec.family for spec in catalog.values()}
    assert {"smollm2", "qwen2.5", "qwen3", "llama3.2", "gemma3", "phi3", "mistral"} <= families
    for spec in catalog.values():
        if spec.kind == "chat" and spec.family != "gpt-oss":  # gpt-oss ships in MXFP4 only
            assert "q4_k_m" in spec.quants, spec.name
        assert spec.default_quant in spec.quants
    assert catalog["qwen2.5-3b"].commercial_use is False
    assert catalog["llama3.2-1b"].gated is True
    gemma = catalog["gemma3-270m"].quant()
    assert len(gemma.packages) == 4 and gemma.sha256.startswith("a5fd3b62")


@pytest.mark.slow
@pytest.mark.model
def test_the_second_starter_model_runs(fresh_home):
    """Gemma 3 270M: another architecture and a SentencePiece vocabulary, from four wheels."""
    proc = run_cli("run", "-m", "gemma3-270m", "--max-tokens", "12", "--temperature", "0",
                   "--stats", "The capital of France is", home=fresh_home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()  # what it says is the CPU's business; test_engine scores it
    assert "no chat template" in proc.stderr  # a base model: plain completion, with a notice
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    assert stats["completion_tokens"] == 12


def test_search_and_show_of_the_current_catalogue_offline(fresh_home):
    found = run_cli("search", "qwen", "--json", home=fresh_home, LOCALLLM_OFFLINE="1")
    names = [m["name"] for m in json.loads(found.stdout)["catalog"]]
    assert names.index("qwen3.5-2b") < names.index("qwen3-4b") < names.index("qwen2.5-3b")
    assert names[-1] == "qwen2.5-3b"  # superseded entries come last
    text = run_cli("search", "mistral", home=fresh_home, LOCALLLM_OFFLINE="1").stdout
    assert "[superseded by ministral3-8b]" in text and text.index("ministral3-8b") < text.index(
        "mistral-7b ")  # fmt: skip
    embeddings = run_cli("search", "embedding", "--json", home=fresh_home, LOCALLLM_OFFLINE="1")
    kinds = {m["name"]: m["kind"] for m in json.loads(embeddings.stdout)["catalog"]}
    assert kinds["bge-m3"] == "embedding" and kinds["qwen3-embedding-0.6b"] == "embedding"
    shown = json.loads(run_cli("show", "gpt-oss-20b", "--json", home=fresh_home,
                               LOCALLLM_OFFLINE="1").stdout)  # fmt: skip
    assert shown["thinking"] == "always" and shown["default_quant"] == "mxfp4"
    assert "16 GB" in shown["note"]
    bge = run_cli("show", "bge-m3", home=fresh_home, LOCALLLM_OFFLINE="1").stdout
    assert "1024 dimensions, cls pooling" in bge
    old = json.loads(run_cli("show", "mistral-7b", "--json", home=fresh_home,
                             LOCALLLM_OFFLINE="1").stdout)  # fmt: skip
    assert old["superseded_by"] == "ministral3-8b"
