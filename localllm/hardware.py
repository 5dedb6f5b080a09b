"""What this machine has: CPU, cores, RAM, GPUs and free disk.

Plain facts gathered from the operating system (psutil, /proc, nvidia-smi);
no decisions are made here. Which backends the llama.cpp build supports is
the engine's to say, since only the engine imports llama_cpp.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# CPU flags that decide llama.cpp's speed, in the spelling /proc/cpuinfo uses.
_INTERESTING_FLAGS = (
    "sse3", "ssse3", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "neon", "asimd", "sve", "dotprod",
    "i8mm",
)  # fmt: skip


@dataclass(frozen=True)
class GPU:
    name: str
    vram_total: int  # bytes
    vram_free: int  # bytes
    driver: str | None = None


@dataclass(frozen=True)
class CPUInfo:
    model: str
    arch: str
    physical_cores: int
    logical_cores: int
    features: tuple[str, ...]


def _cpuinfo_text() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Hardware", "Model") and value.strip():
            return value.strip()
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True, text=True, timeout=5, check=False,
            )  # fmt: skip
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _cpu_flags(cpuinfo: str) -> tuple[str, ...]:
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    if "pni" in flags:  # Linux spells SSE3 "pni" (Prescott New Instructions)
        flags.add("sse3")
    if platform.machine() in ("arm64", "aarch64") and platform.system() == "Darwin":
        flags.update(("neon", "dotprod"))
    return tuple(f for f in _INTERESTING_FLAGS if f in flags)


def usable_cpu_count() -> int:
    """Logical CPUs this process may run on (respects affinity and container limits)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def cpu_info() -> CPUInfo:
    import psutil

    text = _cpuinfo_text()
    logical = usable_cpu_count()
    physical = psutil.cpu_count(logical=False) or logical
    return CPUInfo(
        model=_cpu_model(text),
        arch=platform.machine(),
        physical_cores=max(1, min(physical, logical)),
        logical_cores=logical,
        features=_cpu_flags(text),
    )


def physical_cores() -> int:
    """The thread count llama.cpp runs best with: one per physical core we may use."""
    return cpu_info().physical_cores


@dataclass(frozen=True)
class Memory:
    total: int  # bytes
    available: int  # bytes: what a new process can take without swapping


def memory() -> Memory:
    import psutil

    vm = psutil.virtual_memory()
    return Memory(total=int(vm.total), available=int(vm.available))


def _parse_nvidia_smi(text: str) -> list[GPU]:
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        try:
            total, free = int(float(parts[1])), int(float(parts[2]))
        except ValueError:
            continue
        mib = 1024 * 1024
        gpus.append(GPU(parts[0], total * mib, free * mib, parts[3] if len(parts) > 3 else None))
    return gpus


def nvidia_gpus() -> list[GPU]:
    """NVIDIA GPUs with free VRAM, from nvidia-smi; empty when there is none."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,memory.free,driver_version",
             "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    return _parse_nvidia_smi(out.stdout) if out.returncode == 0 else []


def disk_free(path: Path) -> int:
    """Free bytes on the file system that holds path (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free
