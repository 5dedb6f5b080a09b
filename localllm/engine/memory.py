"""The one memory model: what a model costs to run, from its GGUF header alone.

`pull --fit`, `show`, the load plan's context cap, the GPU offload planner and
the model host's eviction all ask this module, so they never disagree about
whether a model fits. The estimate covers the weights, the f16 KV cache at a
context, llama.cpp's compute buffers for one micro-batch, and a fixed runtime
overhead. It errs on the generous side: a model that fits here loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from localllm.gguf_meta import GGUFInfo

MiB = 1024**2
UBATCH = 512  # llama.cpp's default micro-batch: compute buffers scale with it
RUNTIME_OVERHEAD = 96 * MiB  # llama.cpp's own allocations, threads, mmap bookkeeping


def _scalar(value):
    if isinstance(value, list):  # per-layer values: plan for the largest
        return max(value) if value else None
    return value


def vocab_size(info: GGUFInfo) -> int:
    tokens = info.get("tokenizer.ggml.tokens")
    if isinstance(tokens, int):  # the header parser keeps only the length of big arrays
        return tokens
    return int(info.get(f"{info.architecture}.vocab_size") or 32000)


def compute_base(info: GGUFInfo) -> int:
    """Compute buffer for one micro-batch, the part fixed in size: logits and activations."""
    width = int(_scalar(info.get(f"{info.architecture}.embedding_length")) or 0)
    return UBATCH * (vocab_size(info) * 4 + width * 4 * 8)


def compute_per_ctx(info: GGUFInfo) -> int:
    """What the compute buffer grows by per token of context: one f32 score per head."""
    heads = int(_scalar(info.get(f"{info.architecture}.attention.head_count")) or 0)
    return UBATCH * heads * 4


@dataclass(frozen=True)
class MemoryEstimate:
    n_ctx: int
    weights: int
    kv_cache: int
    compute: int  # compute buffers plus the runtime overhead

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


def estimate_memory(info: GGUFInfo, n_ctx: int | None = None) -> MemoryEstimate:
    """Memory to run the model at n_ctx tokens of KV cache (default: its trained context).

    With N parallel sequences pass the sum of their contexts: the KV cache is what grows.
    """
    n_ctx = n_ctx or info.context_length or 4096
    weights = sum(t.n_bytes for t in info.tensors)
    kv = max(0, info.kv_bytes_per_token()) * n_ctx
    compute = compute_base(info) + compute_per_ctx(info) * n_ctx + RUNTIME_OVERHEAD
    return MemoryEstimate(n_ctx, weights, kv, compute)


def largest_context(info: GGUFInfo, budget: float, *, extra_per_token: int = 0) -> int:
    """The most tokens of context whose estimate (plus extra_per_token each) fits budget bytes."""
    fixed = estimate_memory(info, 1)
    per_token = max(0, info.kv_bytes_per_token()) + compute_per_ctx(info) + extra_per_token
    room = budget - (fixed.total - fixed.kv_cache - compute_per_ctx(info))
    if per_token <= 0:
        return 0 if room < 0 else 2**31
    return max(0, int(room // per_token))
