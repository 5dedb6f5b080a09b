"""Will this model fit? Memory needed at a given context, against what is free.

An estimate from the GGUF header alone (so it works before downloading, from
a few Range requests): the weights, the KV cache at the requested context,
and llama.cpp's compute buffers. It errs on the generous side; a model that
'fits' here loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from localllm.gguf_meta import GGUFInfo

UBATCH = 512  # llama.cpp's default micro-batch: compute buffers scale with it
RUNTIME_OVERHEAD = 96 * 1024**2  # llama.cpp's own allocations, threads, mmap bookkeeping


@dataclass(frozen=True)
class MemoryEstimate:
    n_ctx: int
    weights: int
    kv_cache: int
    compute: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute

    def as_dict(self) -> dict:
        return {
            "n_ctx": self.n_ctx,
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "compute": self.compute,
            "total": self.total,
        }


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


def _vocab_size(info: GGUFInfo) -> int:
    tokens = info.get("tokenizer.ggml.tokens")
    if isinstance(tokens, int):  # the parser keeps only the length of big arrays
        return tokens
    return int(info.get(f"{info.architecture}.vocab_size") or 32000)


def estimate_memory(info: GGUFInfo, n_ctx: int | None = None) -> MemoryEstimate:
    """Memory to run the model at n_ctx (default: its trained context)."""
    n_ctx = n_ctx or info.context_length or 4096
    weights = sum(t.n_bytes for t in info.tensors)
    kv = info.kv_bytes_per_token() * n_ctx
    embd = int(info.get(f"{info.architecture}.embedding_length") or 0)
    heads = int(info.get(f"{info.architecture}.attention.head_count") or 0)
    # Logits for one micro-batch, activations, and attention scores (ubatch x ctx per head).
    compute = UBATCH * (_vocab_size(info) * 4 + embd * 4 * 8 + n_ctx * heads * 4)
    return MemoryEstimate(n_ctx, weights, kv, compute + RUNTIME_OVERHEAD)


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
