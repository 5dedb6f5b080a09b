"""`localllm quantize` and `localllm eval` as a user runs them."""

from __future__ import annotations

import json

import gguf
import pytest
from conftest import run_cli
from quantize_helpers import write_tiny_checkpoint

pytestmark = pytest.mark.slow


def _listed(home) -> dict:
    proc = run_cli("list", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    return {m["name"]: m for m in json.loads(proc.stdout)}


def test_quantize_a_folder_registers_it_and_run_uses_it(smol_checkpoint, fresh_home):
    proc = run_cli("quantize", str(smol_checkpoint), "--type", "q8_0", home=fresh_home)
    assert proc.returncode == 0, proc.stderr
    assert "registered as smollm2-135m-instruct-q8_0" in proc.stdout
    model = _listed(fresh_home)["smollm2-135m-instruct-q8_0"]
    assert model["quant"] == "q8_0" and model["architecture"] == "llama"
    answer = run_cli("run", "-m", "smollm2-135m-instruct-q8_0", "--temperature", "0",
                     "--max-tokens", "40", "What colour is the sky on a clear day?",
                     home=fresh_home)  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip()  # what it knows is measured by likelihood in test_quantize_types
    removed = run_cli("rm", "smollm2-135m-instruct-q8_0", "-y", home=fresh_home)
    assert removed.returncode == 0 and "deleted" in removed.stdout
    assert not list(fresh_home.rglob("*.gguf"))


def test_output_path_alone_is_not_registered_and_is_not_overwritten(smol_checkpoint, fresh_home,
                                                                    tmp_path):  # fmt: skip
    out = tmp_path / "smol-q4_0.gguf"
    proc = run_cli("quantize", str(smol_checkpoint), "-t", "q4_0", "-o", str(out), home=fresh_home)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "registered" not in proc.stdout
    assert _listed(fresh_home) == {}
    before = out.stat().st_mtime_ns
    again = run_cli("quantize", str(smol_checkpoint), "-t", "q4_0", "-o", str(out), home=fresh_home)
    assert again.returncode == 1 and "--force" in again.stderr
    assert out.stat().st_mtime_ns == before
    named = run_cli("quantize", str(smol_checkpoint), "-t", "q4_0", "-o", str(out), "--force",
                    "--name", "smol-small", home=fresh_home)  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert _listed(fresh_home)["smol-small"]["path"] == str(out)


@pytest.mark.one_build  # the figures' bounds are checked on both builds in test_quantize_types
def test_report_stores_quality_figures_in_the_output(smol_checkpoint, fresh_home):
    proc = run_cli("quantize", str(smol_checkpoint), "--type", "q4_k_m", "--report", "--json",
                   home=fresh_home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    report = result["report"]
    assert report["tokens_scored"] >= 1000
    assert 1.0 < report["reference_perplexity"] < report["perplexity"]
    assert report["kl_mean"] > 0 and 0.5 < report["top1_agreement"] < 1
    fields = gguf.GGUFReader(result["path"]).fields
    stored = fields["localllm.quality.perplexity"].contents()
    assert stored == pytest.approx(report["perplexity"], rel=1e-6)
    assert fields["localllm.quality.text"].contents() == "heldout_en.txt"
    assert fields["general.quantized_by"].contents() == "localllm"
    shown = json.loads(run_cli("show", result["name"], "--json", home=fresh_home).stdout)
    assert shown["quality"]["perplexity"] == pytest.approx(report["perplexity"], rel=1e-6)
    assert shown["quality"]["top1_agreement"] == pytest.approx(report["top1_agreement"])
    assert not list(fresh_home.rglob(".*.partial"))  # the 16-bit reference is gone too


def test_requantizing_a_quantized_model_warns(starter_home, fresh_home, tmp_path):
    out = tmp_path / "requantized.gguf"
    proc = run_cli("quantize", "smollm2-135m", "--type", "q8_0", "-o", str(out),
                   home=starter_home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "already quantized" in proc.stderr
    assert gguf.GGUFReader(out).fields["general.file_type"].contents() == 7  # MOSTLY_Q8_0


def test_quantize_a_hub_repo_downloads_only_what_conversion_needs(hub, fresh_home, tmp_path):
    folder = tmp_path / "tiny"
    write_tiny_checkpoint(folder, "qwen3")
    for path in folder.iterdir():
        hub.add_file("acme/Tiny-Qwen3", path.name, path)
    hub.add_file("acme/Tiny-Qwen3", "pytorch_model.bin", b"not needed" * 100)
    hub.add_file("acme/Tiny-Qwen3", "onnx/model.onnx", b"not needed" * 100)
    proc = run_cli("quantize", "acme/Tiny-Qwen3", "--type", "f16", home=fresh_home,
                   HF_ENDPOINT=hub.url)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fetched = {r.filename for r in hub.requests if r.filename and r.method == "GET"}
    assert "model.safetensors" in fetched and "config.json" in fetched
    assert not fetched & {"pytorch_model.bin", "onnx/model.onnx"}
    model = _listed(fresh_home)["tiny-qwen3-f16"]
    fields = gguf.GGUFReader(model["path"]).fields
    assert fields["general.source.repo_url"].contents() == "https://huggingface.co/acme/Tiny-Qwen3"
    offline = run_cli("quantize", "acme/Other-Model", "--type", "f16", home=fresh_home,
                      LOCALLLM_OFFLINE="1")  # fmt: skip
    assert offline.returncode == 1 and "offline" in offline.stderr.lower()


def test_eval_reports_perplexity_and_divergence(smol_checkpoint, fresh_home, tmp_path):
    for kind in ("f16", "q4_0"):
        proc = run_cli("quantize", str(smol_checkpoint), "-t", kind, "--name", f"smol-{kind}",
                       "-o", str(tmp_path / f"{kind}.gguf"), home=fresh_home)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    text = tmp_path / "notes.txt"
    text.write_text("The tin cup measured the rain every morning for thirty years. " * 40)
    proc = run_cli("eval", "smol-q4_0", "--ref", "smol-f16", "--text", str(text), "--json",
                   home=fresh_home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["model"] == "q4_0.gguf" and report["reference"] == "f16.gguf"
    assert report["perplexity"] > 1 and report["kl_mean"] > 0
    same = run_cli("eval", "smol-f16", "--ref", "smol-f16", "--text", str(text), "--json",
                   home=fresh_home)  # fmt: skip
    assert json.loads(same.stdout)["kl_mean"] == pytest.approx(0, abs=1e-6)
    binary = tmp_path / "data.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    bad = run_cli("eval", "smol-f16", "--text", str(binary), home=fresh_home)
    assert bad.returncode == 1 and "UTF-8" in bad.stderr


def test_an_unknown_type_is_a_usage_error(smol_checkpoint, fresh_home):
    proc = run_cli("quantize", str(smol_checkpoint), "--type", "q3_k_xs", home=fresh_home)
    assert proc.returncode == 2
    assert "q4_k_m" in proc.stderr  # the choices are listed
