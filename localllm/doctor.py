"""The facts `localllm doctor` reports: build, backends, CPU, memory, GPUs, folders, disk.

Gathers everything into one plain dict (the --json output), plus, for a named
model, the GPU offload plan with the numbers behind it, and the command that
reinstalls llama.cpp when a GPU is present that this build cannot use.
Formatting for people is the CLI's job.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict
from pathlib import Path

from localllm import __version__, hardware
from localllm.config import Settings
from localllm.errors import ModelNotFound


def _folders(settings: Settings) -> dict:
    return {
        "home": str(settings.home) if settings.home else None,
        "data": str(settings.data_dir),
        "models": str(settings.models_dir),
        "cache": str(settings.cache_dir),
        "config": str(settings.config_dir),
    }


def collect(settings: Settings) -> dict:
    from localllm.engine.build import avoid_crashing_kernels, build_info
    from localllm.install_advice import current_install, reinstall_command
    from localllm.store.registry import Registry

    build = build_info()
    cpu = hardware.cpu_info()
    mem = hardware.memory()
    gpus = hardware.nvidia_gpus()
    install = current_install()
    advice = reinstall_command(install, build.backends, gpus, build.llama_cpp_python)
    try:
        models = len(Registry(settings).all())
    except Exception as exc:  # a broken registry is something doctor must report, not die on
        models = f"unreadable: {exc}"
    return {
        "localllm": __version__,
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "install": install.kind,
        "llama_cpp_python": build.llama_cpp_python,
        "backends": build.backends,
        "gpu_offload": build.gpu_offload,
        "llama_cpp_system_info": build.system_info,
        "kernels_off": avoid_crashing_kernels(),
        "cpu": asdict(cpu),
        "ram": {"total": mem.total, "available": mem.available},
        "gpus": [asdict(g) for g in gpus],
        "gpu_reinstall": advice.as_dict() if advice else None,
        "folders": _folders(settings),
        "disk_free": hardware.disk_free(settings.data_dir),
        "models_registered": models,
        "offline": settings.offline,
        "remote_engines": _remote_engines(settings),
    }


def _remote_engines(settings: Settings) -> dict | str:
    """Where text may go: each configured engine's URL (not contacted; keys never shown)."""
    from localllm.errors import ConfigError
    from localllm.remote_engines import configured

    try:
        return {name: c.shown for name, c in configured(settings).items()}
    except ConfigError as exc:
        return f"config.toml: {exc}"


def _local_model(settings: Settings, ref: str) -> tuple[str, Path]:
    """A stored model or a .gguf path; doctor explains, it never downloads."""
    from localllm.store.pull import catalog_target
    from localllm.store.resolve import find_local

    entry = find_local(settings, ref)
    if entry is not None:
        return entry.name, Path(entry.path)
    path = Path(ref).expanduser()
    if path.is_file():
        return path.name, path
    if not ref.startswith("hf:") and catalog_target(ref) is None:
        raise ModelNotFound(
            f"unknown model {ref!r}: name a downloaded model (`localllm list`) or a .gguf file"
        )
    raise ModelNotFound(
        f"model {ref!r} is not downloaded: run `localllm pull {ref}`, then `localllm doctor {ref}`"
    )


def offload_report(info, n_ctx: int, target, requested: int | None = None) -> dict:
    """The GPU plan for a model at n_ctx on a given build and machine, with its numbers."""
    from localllm.engine.offload import layer_sizes, plan_offload

    sizes = layer_sizes(info)
    plan = plan_offload(
        sizes, n_ctx, backend=target.backend, gpus=target.gpus,
        unified_memory=target.unified_memory, requested=requested,
    )  # fmt: skip
    return {
        "n_ctx": n_ctx,
        "blocks": len(sizes.blocks),
        "block_bytes": max(sizes.blocks, default=0),
        "output_bytes": sizes.output,
        "input_bytes": sizes.input,
        "kv_bytes_per_layer": sizes.kv_per_token * n_ctx,
        "compute_bytes": sizes.compute_bytes(n_ctx),
        **plan.as_dict(),
    }


def explain_model(
    settings: Settings, ref: str, n_ctx: int | None = None, gpu_layers: int | None = None
) -> dict:
    """`doctor MODEL`: how this machine would load the model, and why."""
    from localllm.engine.build import offload_target
    from localllm.engine.plan import choose_context
    from localllm.gguf_meta import read_gguf_info

    name, path = _local_model(settings, ref)
    info = read_gguf_info(path)
    ctx, notes = choose_context(info, n_ctx, hardware.memory().available)
    report = offload_report(info, ctx, offload_target(), gpu_layers)
    return {"model": name, "path": str(path), "size": info.size, "context_notes": notes, **report}
