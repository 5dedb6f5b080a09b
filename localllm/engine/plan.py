"""Choose how to load a model: context size, threads, GPU layers, flash attention.

Pure arithmetic over the GGUF header and the machine's free memory, so it is
easy to test and to explain (`doctor` and `--stats` show the notes). GPU
layers are engine/offload.py's decision; this module feeds it the context.
It does not load anything.
"""

from __future__ import annotations

from localllm.engine.base import LoadOptions, LoadPlan
from localllm.engine.memory import largest_context
from localllm.engine.offload import layer_sizes, plan_offload
from localllm.gguf_meta import GGUFInfo
from localllm.hardware import GPU

DEFAULT_CTX = 8192  # when the user names none: ample for chat, cheap to allocate
MIN_CTX = 512
CTX_STEP = 256
RAM_SHARE = 0.8  # leave a fifth of free RAM to the rest of the system


def ram_context_cap(info: GGUFInfo, ram_available: int) -> int:
    """The largest context the memory model fits in the usable share of free RAM."""
    if info.kv_bytes_per_token() <= 0:
        return DEFAULT_CTX
    cap = largest_context(info, ram_available * RAM_SHARE) // CTX_STEP * CTX_STEP
    return max(MIN_CTX, cap)


def choose_context(
    info: GGUFInfo,
    requested: int | None,
    ram_available: int,
    minimum: int = MIN_CTX,
    n_seq: int = 1,
) -> tuple[int, list]:
    """The context (per sequence, n_seq of them), and a note for every way it differs
    from the request."""
    notes = []
    trained = info.context_length or DEFAULT_CTX
    cap = max(MIN_CTX, ram_context_cap(info, ram_available) // n_seq // CTX_STEP * CTX_STEP)
    wanted = requested or min(DEFAULT_CTX, trained)
    n_ctx = min(wanted, trained, cap)
    if requested and requested > trained:
        notes.append(f"context {requested} exceeds the model's trained {trained}; using {n_ctx}")
    elif requested and n_ctx < requested:
        notes.append(f"context {requested} does not fit in free RAM; using {n_ctx}")
    floor = min(minimum, trained)
    if n_ctx < floor:
        if requested and requested < floor:
            # A chat turn needs room for the template, the message and a reply.
            notes.append(f"context {requested} is below the minimum of {floor}; using {floor}")
        n_ctx = floor
    return n_ctx, notes


def default_parallel(info: GGUFInfo, n_ctx: int, ram_available: int, most: int = 4) -> int:
    """How many sequences of n_ctx tokens fit in free RAM beside the weights (1 to most)."""
    return max(1, min(most, ram_context_cap(info, ram_available) // max(1, n_ctx)))


def make_plan(
    info: GGUFInfo,
    options: LoadOptions,
    *,
    ram_available: int,
    physical_cores: int,
    gpu_backend: str | None,
    gpus: list[GPU],
    unified_memory: bool = False,
    min_ctx: int = MIN_CTX,
    n_seq: int = 1,
) -> LoadPlan:
    """The whole load plan; gpu_backend is None for a CPU-only llama.cpp build.

    n_seq sequences of n_ctx each share the KV cache (the batching engine's slots)."""
    n_ctx, notes = choose_context(info, options.n_ctx, ram_available, min_ctx, n_seq)
    offload = plan_offload(
        layer_sizes(info), n_ctx * n_seq, backend=gpu_backend, gpus=gpus,
        unified_memory=unified_memory, requested=options.n_gpu_layers,
    )  # fmt: skip
    if offload.notice:
        notes.append(offload.notice)
    return LoadPlan(
        n_ctx=n_ctx,
        n_threads=options.n_threads or physical_cores,
        n_gpu_layers=offload.n_gpu_layers,
        flash_attn=options.flash_attn,
        notes=tuple(notes),
        offload_reason=offload.reason,
    )
