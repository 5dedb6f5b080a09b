"""`doctor` and GPUs: the reinstall command per platform, and a model's offload plan.

The reinstall advice and the plan are pure functions of the machine's facts,
so other platforms and GPUs are handed in as data; the CLI tests run this
machine's real (CPU-only) build on the starter model.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from localllm.doctor import offload_report
from localllm.engine.build import OffloadTarget
from localllm.gguf_meta import read_gguf_info
from localllm.hardware import GPU
from localllm.install_advice import Install, reinstall_command

GiB = 1024**3
RTX = [GPU("NVIDIA GeForce RTX 4070", 12 * GiB, 11 * GiB, "550.54")]
CPU_ONLY = {"CPU": True, "CUDA": False, "Metal": False, "Vulkan": False, "ROCm": False}
WITH_CUDA = {**CPU_ONLY, "CUDA": True}
WITH_METAL = {**CPU_ONLY, "Metal": True}
PIN = "llama-cpp-python==0.3.36"
FLAGS = f"install --force-reinstall --no-deps --no-cache-dir {PIN}"

CUDA_ENV, PS_CUDA_ENV = 'CMAKE_ARGS="-DGGML_CUDA=on" ', '$env:CMAKE_ARGS="-DGGML_CUDA=on"; '
WIN_PY, WIN_PF_PY = r"C:\Users\ana\venv\Scripts\python.exe", r"C:\Program Files\Py311\python.exe"


def case(case_id, system, machine, kind, python, backends, gpus, expected):
    return pytest.param(
        Install(system, machine, kind, python), backends, gpus, expected, id=case_id
    )


ADVICE_CASES = [
    case("linux-pipx-nvidia", "Linux", "x86_64", "pipx", "/p/venvs/localllm/bin/python",
         CPU_ONLY, RTX, f"{CUDA_ENV}pipx runpip localllm {FLAGS}"),
    case("linux-pip-nvidia", "Linux", "x86_64", "pip", "/opt/venv/bin/python",
         CPU_ONLY, RTX, f"{CUDA_ENV}/opt/venv/bin/python -m pip {FLAGS}"),
    case("linux-pip-path-with-space", "Linux", "aarch64", "pip", "/home/a b/bin/python",
         CPU_ONLY, RTX, f"{CUDA_ENV}'/home/a b/bin/python' -m pip {FLAGS}"),
    case("linux-binary-nvidia", "Linux", "x86_64", "binary", "/usr/local/bin/localllm",
         CPU_ONLY, RTX, f"{CUDA_ENV}bash packaging/build.sh"),
    case("windows-pip-nvidia", "Windows", "AMD64", "pip", WIN_PY,
         CPU_ONLY, RTX, f"{PS_CUDA_ENV}{WIN_PY} -m pip {FLAGS}"),
    case("windows-pip-program-files", "Windows", "AMD64", "pip", WIN_PF_PY,
         CPU_ONLY, RTX, f'{PS_CUDA_ENV}& "{WIN_PF_PY}" -m pip {FLAGS}'),
    case("windows-pipx-nvidia", "Windows", "AMD64", "pipx", WIN_PY,
         CPU_ONLY, RTX, f"{PS_CUDA_ENV}pipx runpip localllm {FLAGS}"),
    case("macos-arm-cpu-build", "Darwin", "arm64", "pipx", "/p/venvs/localllm/bin/python",
         CPU_ONLY, [], f'CMAKE_ARGS="-DGGML_METAL=on" pipx runpip localllm {FLAGS}'),
    case("macos-arm-metal-build", "Darwin", "arm64", "pip", "/opt/homebrew/bin/python3",
         WITH_METAL, [], None),
    case("macos-intel", "Darwin", "x86_64", "pip", "/usr/local/bin/python3", CPU_ONLY, [], None),
    case("linux-cuda-build", "Linux", "x86_64", "pip", "/opt/v/bin/python", WITH_CUDA, RTX, None),
    case("linux-no-gpu", "Linux", "x86_64", "pip", "/opt/venv/bin/python", CPU_ONLY, [], None),
]  # fmt: skip


@pytest.mark.parametrize("install,backends,gpus,expected", ADVICE_CASES)
def test_reinstall_command_for_the_platform(install, backends, gpus, expected):
    advice = reinstall_command(install, backends, gpus, "0.3.36")
    if expected is None:
        assert advice is None
        return
    assert advice.command == expected
    assert advice.backend in ("CUDA", "Metal")
    assert ("CUDA toolkit" in advice.note) == (advice.backend == "CUDA")


def test_plan_for_a_model_on_a_gpu_machine_given_as_data(starter_path):
    info = read_gguf_info(starter_path)
    cuda = OffloadTarget("CUDA", [GPU("small", GiB, GiB)], unified_memory=False)
    partial = offload_report(info, 8192, cuda)
    assert 0 < partial["n_gpu_layers"] < 30 and partial["n_layers"] == 31
    assert partial["blocks"] == 30 and partial["vram_free"] == GiB
    assert partial["gpu_bytes"] + partial["reserve"] <= GiB
    full = offload_report(info, 2048, cuda)
    assert full["n_gpu_layers"] == -1 and "all 31 layers" in full["reason"]
    forced = offload_report(info, 8192, cuda, requested=3)
    assert forced["n_gpu_layers"] == 3 and "--gpu-layers 3" in forced["reason"]
    metal = offload_report(info, 8192, OffloadTarget("Metal", [], unified_memory=True))
    assert metal["n_gpu_layers"] == -1 and "shares memory" in metal["reason"]


def test_doctor_explains_the_plan_for_a_model(starter_home):
    proc = run_cli("doctor", "smollm2-135m", "--ctx", "4096", "--json", home=starter_home)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    plan = report["offload"]
    assert plan["model"] == "smollm2-135m:q4_1" and plan["n_ctx"] == 4096
    assert plan["blocks"] == 30 and plan["kv_bytes_per_layer"] == 4096 * 768
    if not report["gpu_offload"]:  # this machine's CPU build
        assert plan["n_gpu_layers"] == 0 and "no GPU backend" in plan["reason"]
    people = run_cli("doctor", "smollm2-135m", home=starter_home)
    assert people.returncode == 0, people.stderr
    assert "GPU plan for smollm2-135m:q4_1" in people.stdout
    assert "n_gpu_layers = " in people.stdout and "--gpu-layers" in people.stdout


def test_doctor_takes_a_gguf_path_and_refuses_what_is_not_downloaded(starter_home, starter_path):
    proc = run_cli("doctor", str(starter_path), "--json", home=starter_home)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["offload"]["blocks"] == 30
    missing = run_cli("doctor", "qwen2.5-1.5b", home=starter_home)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: model 'qwen2.5-1.5b' is not downloaded: run `localllm pull qwen2.5-1.5b`, "
        "then `localllm doctor qwen2.5-1.5b`"
    )
    usage = run_cli("doctor", "--gpu-layers", "3", home=starter_home)
    assert usage.returncode == 2 and "name a MODEL" in usage.stderr


def test_gpu_layers_is_accepted_by_run_and_reported_in_stats(starter_home):
    proc = run_cli(
        "run", "--gpu-layers", "0", "--no-save", "--temperature", "0", "--max-tokens", "8",
        "--stats", "What colour is the sky on a clear day?", home=starter_home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    assert stats["n_gpu_layers"] == 0 and stats["backend"] == "CPU"
    assert stats["gpu_plan"]  # why: no GPU backend here, or the fit on a GPU machine
    bad = run_cli("run", "--gpu-layers", "-2", "hi", home=starter_home)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
