"""What this llama.cpp build can do: its version and the backends compiled in."""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from localllm.engine.base import BuildInfo
from localllm.hardware import GPU

# Backend name -> how it shows in llama_print_system_info() or a shared library name.
_BACKEND_MARKERS = {
    "CUDA": (r"\bCUDA\b", "ggml-cuda"),
    "Metal": (r"\b(MTL|Metal|METAL)\b", "ggml-metal"),
    "Vulkan": (r"\bVulkan\b", "ggml-vulkan"),
    "ROCm": (r"\b(ROCm|HIP)\b", "ggml-hip"),
}


@lru_cache(maxsize=1)
def build_info() -> BuildInfo:
    import llama_cpp

    system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    libs = " ".join(p.name for p in lib_dir.glob("*")) if lib_dir.is_dir() else ""
    backends = {"CPU": True}
    for name, (pattern, lib) in _BACKEND_MARKERS.items():
        backends[name] = bool(re.search(pattern, system_info)) or lib in libs
    return BuildInfo(
        llama_cpp_python=llama_cpp.__version__,
        backends=backends,
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        system_info=system_info,
    )


def gpu_backend_name(info: BuildInfo) -> str | None:
    """The GPU backend layers would be offloaded to, if any."""
    for name in ("CUDA", "Metal", "ROCm", "Vulkan"):
        if info.backends.get(name):
            return name
    return None


@dataclass(frozen=True)
class OffloadTarget:
    """What the offload planner needs to know about this build and machine."""

    backend: str | None  # the GPU backend layers go to; None: this build runs on the CPU only
    gpus: list[
        GPU
    ]  # NVIDIA GPUs with free VRAM (nvidia-smi), whether or not the build can use them
    unified_memory: bool  # Apple Silicon: the GPU shares RAM, there is no separate VRAM


def offload_target() -> OffloadTarget:
    from localllm import hardware

    build = build_info()
    backend = gpu_backend_name(build) if build.gpu_offload else None
    unified = platform.system() == "Darwin" and platform.machine() == "arm64"
    return OffloadTarget(backend, [] if unified else hardware.nvidia_gpus(), unified)


# The AMX kernels of the llama.cpp that llama-cpp-python 0.3.36 vendors crash the process
# (SIGSEGV in llama_decode, seen on a Xeon with AMX_INT8 and the SmolLM2 Q4_1 starter).
# Weights loaded without llama.cpp's extra buffer types run on the ordinary CPU kernels.
CRASHING_KERNELS = ("AMX_INT8 = 1",)


@lru_cache(maxsize=1)
def avoid_crashing_kernels() -> str | None:
    """Load weights without the extra buffer types if this build has kernels known to crash;
    returns why (for doctor), or None when nothing needed changing. Idempotent."""
    info = build_info().system_info
    found = [k.split(" = ")[0] for k in CRASHING_KERNELS if k in info]
    if not found:
        return None
    import llama_cpp
    import llama_cpp.llama_cpp as bindings

    default_params = bindings.llama_model_default_params

    def params_without_extra_buffers():
        params = default_params()
        params.use_extra_bufts = False
        return params

    # Llama() and our own loaders read the defaults through these two names.
    bindings.llama_model_default_params = params_without_extra_buffers
    llama_cpp.llama_model_default_params = params_without_extra_buffers
    return (f"{', '.join(found)} kernels are off: in this llama.cpp build they crash the "
            "process; weights use the ordinary CPU kernels")  # fmt: skip
