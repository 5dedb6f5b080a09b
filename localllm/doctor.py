"""The facts `localllm doctor` reports: build, backends, CPU, memory, GPUs, folders, disk.

Gathers everything into one plain dict (the --json output); formatting for
people is the CLI's job.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict

from localllm import __version__, hardware
from localllm.config import Settings


def _folders(settings: Settings) -> dict:
    return {
        "home": str(settings.home) if settings.home else None,
        "data": str(settings.data_dir),
        "models": str(settings.models_dir),
        "cache": str(settings.cache_dir),
        "config": str(settings.config_dir),
    }


def collect(settings: Settings) -> dict:
    from localllm.engine.build import build_info
    from localllm.store.registry import Registry

    build = build_info()
    cpu = hardware.cpu_info()
    mem = hardware.memory()
    try:
        models = len(Registry(settings).all())
    except Exception as exc:  # a broken registry is something doctor must report, not die on
        models = f"unreadable: {exc}"
    return {
        "localllm": __version__,
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "llama_cpp_python": build.llama_cpp_python,
        "backends": build.backends,
        "gpu_offload": build.gpu_offload,
        "llama_cpp_system_info": build.system_info,
        "cpu": asdict(cpu),
        "ram": {"total": mem.total, "available": mem.available},
        "gpus": [asdict(g) for g in hardware.nvidia_gpus()],
        "folders": _folders(settings),
        "disk_free": hardware.disk_free(settings.data_dir),
        "models_registered": models,
        "offline": settings.offline,
    }
