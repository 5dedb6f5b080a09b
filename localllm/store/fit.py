"""Will this model fit? Memory needed at a given context, against what is free.

The estimate is engine/memory.py's, the same one the load plan and the model
host use, read from the GGUF header alone (so it works before downloading,
from a few Range requests); this module compares it with what is free.
"""

from __future__ import annotations

from dataclasses import dataclass

from localllm.engine.memory import MemoryEstimate, estimate_memory

__all__ = ["FitVerdict", "MemoryEstimate", "estimate_memory", "judge_fit", "machine_fit"]


@dataclass(frozen=True)
class FitVerdict:
    estimate: MemoryEstimate
    device: str  # "RAM" or "VRAM"
    available: int

    @property
    def fits(self) -> bool:
        return self.estimate.total <= self.available

    def describe(self) -> str:
        need, have = self.estimate.total / 2**30, self.available / 2**30
        verdict = "fits" if self.fits else "does NOT fit"
        return (
            f"needs ~{need:.1f} GiB at {self.estimate.n_ctx} context; "
            f"{have:.1f} GiB {self.device} free: {verdict}"
        )


def judge_fit(estimate: MemoryEstimate, *, ram_available: int, vram_free: int | None) -> FitVerdict:
    """Compare with free VRAM when a GPU will run it, else with free RAM."""
    if vram_free:
        return FitVerdict(estimate, "VRAM", vram_free)
    return FitVerdict(estimate, "RAM", ram_available)


def machine_fit(estimate: MemoryEstimate) -> FitVerdict:
    """judge_fit against this machine's free memory (and GPUs the build can use)."""
    from localllm import hardware
    from localllm.engine.build import build_info

    vram = None
    if build_info().gpu_offload:
        vram = sum(g.vram_free for g in hardware.nvidia_gpus()) or None
    return judge_fit(estimate, ram_available=hardware.memory().available, vram_free=vram)
