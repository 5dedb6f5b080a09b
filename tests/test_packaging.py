"""Packaging: build.sh's sdist, wheel and single-file executable; pipx installs.

Everything here really builds and installs: packaging/build.sh runs once per
session (a fresh build environment, the sdist, the wheel from the sdist, then
PyInstaller), and pipx installs into a temporary PIPX_HOME. llama-cpp-python's
compiled wheel comes from pip's cache, as in .ci/run, so nothing recompiles
llama.cpp. The installed programs then answer on the real starter model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from localllm import __version__

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parent.parent
QUESTION = "What colour is the sky on a clear day?"
ASK = ("run", "--no-save", "--temperature", "0", "--max-tokens", "24", QUESTION)


def _reference_answer(starter_home: Path) -> str:
    """The greedy answer of the test environment's own localllm: the same llama.cpp build
    (from pip's cache) as the executable and the pipx installs, so the same tokens."""
    from conftest import run_cli

    proc = run_cli(*ASK, home=starter_home)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _run(cmd: list, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _user_env(home: Path, **extra) -> dict:
    """A user's shell: no virtual environment, no PYTHONPATH, only system folders on PATH."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k not in ("CMAKE_ARGS", "PYTHONPATH")}
    env.update(LOCALLLM_BUILD_DIR=str(tmp_path_factory.mktemp("build")), PYTHON=sys.executable)
    proc = _run(["bash", REPO / "packaging" / "build.sh", "--dist", out], env, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_build_script_writes_the_sdist_the_wheel_and_the_executable(dist):
    wheel = dist / f"localllm-{__version__}-py3-none-any.whl"
    sdist = dist / f"localllm-{__version__}.tar.gz"
    exe = dist / "localllm"
    assert wheel.is_file() and sdist.is_file() and exe.is_file()
    assert os.access(exe, os.X_OK)
    names = set(zipfile.ZipFile(wheel).namelist())
    for member in ("localllm/models.toml", "localllm/tui/app.tcss", "localllm/engine/offload.py"):
        assert member in names
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    for member in ("models.toml", "setup.py", "packaging/build.sh", "packaging/localllm.spec"):
        assert member in members


def test_single_file_executable_runs_the_starter_model_without_python_packages(
    dist, tmp_path, starter_path, starter_home
):
    machine = tmp_path / "elsewhere"  # the executable alone, copied onto "another machine"
    machine.mkdir()
    exe = shutil.copy2(dist / "localllm", machine / "localllm")
    home = machine / "home"
    env = _user_env(machine, LOCALLLM_HOME=home)

    version = _run([exe, "--version"], env)
    assert version.returncode == 0 and __version__ in version.stdout

    imported = _run([exe, "import", starter_path, "--name", "starter", "--link"], env)
    assert imported.returncode == 0, imported.stderr
    answer = _run([exe, *ASK, "-m", "starter"], env)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() and answer.stdout == _reference_answer(starter_home)

    # The default model, already stored: `./localllm run "hi"` as the README shows it.
    hi = _run([exe, "run", "--no-save", "--max-tokens", "8", "hi"],
              _user_env(machine, LOCALLLM_HOME=starter_home))  # fmt: skip
    assert hi.returncode == 0, hi.stderr
    assert hi.stdout.strip()

    doctor = _run([exe, "doctor", "--json"], env)
    assert doctor.returncode == 0, doctor.stderr
    assert (
        '"install": "binary"' in doctor.stdout and '"llama_cpp_python": "0.3.36"' in doctor.stdout
    )

    bad = _run([exe, "run", "-m", "no-such-model", "hi"], env)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: unknown model 'no-such-model'")
    assert len(bad.stderr.strip().splitlines()) == 1


def _pipx_install(source, tmp_path: Path) -> Path:
    """pipx install SOURCE into a temporary PIPX_HOME; returns the `localllm` it exposes."""
    bin_dir = tmp_path / "pipx-bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCALLLM_", "PIPX_"))}
    env.pop("CMAKE_ARGS", None)
    env.update(PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(bin_dir),
               PIPX_MAN_DIR=str(tmp_path / "pipx-man"))  # fmt: skip
    proc = _run([sys.executable, "-m", "pipx", "install", source], env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "pipx" / "venvs" / "localllm").is_dir()
    return bin_dir / "localllm"


def _answers_from_its_own_environment(exe: Path, home: Path, starter_home: Path) -> None:
    env = _user_env(home, LOCALLLM_HOME=starter_home)
    version = _run([exe, "--version"], env)
    assert version.returncode == 0 and __version__ in version.stdout
    answer = _run([exe, *ASK], env)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() and answer.stdout == _reference_answer(starter_home)
    doctor = _run([exe, "doctor", "--json"], env)
    assert '"install": "pipx"' in doctor.stdout


def test_pipx_installs_the_built_wheel(dist, tmp_path, starter_home):
    exe = _pipx_install(dist / f"localllm-{__version__}-py3-none-any.whl", tmp_path)
    _answers_from_its_own_environment(exe, tmp_path, starter_home)


def test_pipx_installs_the_source_checkout(tmp_path, starter_home):
    exe = _pipx_install(REPO, tmp_path)
    _answers_from_its_own_environment(exe, tmp_path, starter_home)
