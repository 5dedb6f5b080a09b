"""`doctor --json` and `bench --json` report what they promise."""

from __future__ import annotations

import json

from conftest import run_cli


def test_doctor_json_holds_the_machine_facts(starter_home):
    proc = run_cli("doctor", "--json", home=starter_home)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["llama_cpp_python"] == "0.3.36"
    assert set(report["backends"]) >= {"CPU", "CUDA", "Metal", "Vulkan"}
    assert report["backends"]["CPU"] is True
    assert isinstance(report["gpu_offload"], bool)
    cpu = report["cpu"]
    assert cpu["model"] and cpu["physical_cores"] >= 1 and cpu["logical_cores"] >= 1
    assert isinstance(cpu["features"], list)
    assert 0 < report["ram"]["available"] <= report["ram"]["total"]
    assert isinstance(report["gpus"], list)
    assert report["folders"]["home"] == str(starter_home)
    assert report["folders"]["models"].startswith(str(starter_home))
    assert report["disk_free"] > 0
    assert report["models_registered"] >= 1


def test_doctor_prints_a_table_for_people(starter_home):
    proc = run_cli("doctor", home=starter_home)
    assert proc.returncode == 0, proc.stderr
    for label in ("backends", "CPU", "RAM", "disk free"):
        assert label in proc.stdout


def test_bench_json_compares_bare_and_localllm(starter_home):
    proc = run_cli(
        "bench", "--json", "--rounds", "1", "--prompt-tokens", "64", "--decode-tokens", "16",
        home=starter_home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["model"] == "smollm2-135m:q4_1"
    assert result["prompt_tokens"] == 64 and result["decode_tokens"] == 16
    for side in ("bare", "localllm"):
        assert result[side]["prefill_tps"] > 0
        assert result[side]["decode_tps"] > 0
        assert result[side]["decode_tokens"] == 16
    assert result["ratio"]["decode"] > 0 and result["ratio"]["prefill"] > 0
    assert result["n_threads"] >= 1 and result["n_ctx"] >= 80


def test_help_is_fast_to_reach_and_shows_examples(starter_home):
    for command in ("run", "bench", "doctor"):
        proc = run_cli(command, "--help", home=starter_home)
        assert proc.returncode == 0
        assert "Examples:" in proc.stdout
    top = run_cli("--help", home=starter_home)
    assert all(c in top.stdout for c in ("run", "bench", "doctor"))


def test_version(starter_home):
    from localllm import __version__

    proc = run_cli("--version", home=starter_home)
    assert proc.returncode == 0
    assert __version__ in proc.stdout


def test_unknown_command_is_a_usage_error(starter_home):
    proc = run_cli("frobnicate", home=starter_home)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
