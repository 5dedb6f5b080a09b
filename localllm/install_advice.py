"""The exact command that reinstalls llama.cpp for the GPU this machine has.

llama.cpp picks its backends when it is compiled, so a GPU that the installed
build cannot use needs llama-cpp-python rebuilt with CMAKE_ARGS. The command
depends on the platform (shell syntax), on how localllm was installed (pipx,
pip, the single-file executable) and on pip's wheel cache, which would
otherwise hand back the CPU build it compiled first. A pure function of those
facts, so every platform's advice can be tested here; `doctor` prints it.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

LLAMA_CPP_PYTHON = "llama-cpp-python"


@dataclass(frozen=True)
class Install:
    """How this copy of localllm was installed, and on what."""

    system: str  # platform.system(): "Linux", "Windows", "Darwin"
    machine: str  # platform.machine(): "x86_64", "AMD64", "arm64", "aarch64"
    kind: str  # "pipx", "pip" or "binary" (the single-file executable)
    python: str  # the interpreter whose pip manages localllm's environment


@dataclass(frozen=True)
class Advice:
    backend: str  # the backend the reinstall adds: "CUDA" or "Metal"
    command: str  # one line to paste into the user's shell
    note: str  # what the command needs and costs

    def as_dict(self) -> dict:
        return {"backend": self.backend, "command": self.command, "note": self.note}


def current_install() -> Install:
    """Describe this process's installation (pipx writes pipx_metadata.json into its venvs)."""
    import platform

    if getattr(sys, "frozen", False):
        kind = "binary"
    elif (Path(sys.prefix) / "pipx_metadata.json").is_file():
        kind = "pipx"
    else:
        kind = "pip"
    return Install(platform.system(), platform.machine(), kind, sys.executable)


def _program(path: str, windows: bool) -> str:
    """A program path as the first word of a command line (PowerShell needs & before quotes)."""
    if not windows:
        return shlex.quote(path)
    return f'& "{path}"' if " " in path else path


def reinstall_command(
    install: Install, backends: dict[str, bool], nvidia_gpus: list, llama_version: str
) -> Advice | None:
    """The reinstall that lets llama.cpp use this machine's GPU; None when there is none to gain."""
    apple_silicon = install.system == "Darwin" and install.machine in ("arm64", "aarch64")
    if apple_silicon and not backends.get("Metal"):
        backend, flag = "Metal", "-DGGML_METAL=on"
        needs = "Xcode's command-line tools (xcode-select --install)"
    elif nvidia_gpus and not backends.get("CUDA") and install.system in ("Linux", "Windows"):
        backend, flag = "CUDA", "-DGGML_CUDA=on"
        needs = "the CUDA toolkit (nvcc on PATH) matching your driver"
    else:
        return None
    windows = install.system == "Windows" and install.kind != "binary"  # build.sh runs in bash
    env = f'$env:CMAKE_ARGS="{flag}"; ' if windows else f'CMAKE_ARGS="{flag}" '
    pin = f"{LLAMA_CPP_PYTHON}=={llama_version}"
    # --no-cache-dir: pip would otherwise reuse the CPU wheel it built and cached before.
    pip_args = f"install --force-reinstall --no-deps --no-cache-dir {pin}"
    if install.kind == "pipx":
        command = f"{env}pipx runpip localllm {pip_args}"
    elif install.kind == "binary":
        command = f"{env}bash packaging/build.sh"
        needs += ", and a localllm source checkout (run it there; the new executable is dist/"
        needs += "localllm)"
    else:
        command = f"{env}{_program(install.python, windows)} -m pip {pip_args}"
    note = f"compiles llama.cpp with {backend} (several minutes); needs {needs}"
    return Advice(backend, command, note)
