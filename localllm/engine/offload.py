"""How many layers go to the GPU: a pure function of layer sizes, context and free VRAM.

llama.cpp offloads the *last* N repeating blocks (`blk.N.*`) and, once every
block is on the GPU, the output head as one more layer; token embeddings
always stay on the CPU. Each offloaded block also holds its share of the KV
cache at the chosen context. This module turns a GGUF header into those
per-layer costs and packs as many layers as fit into free VRAM after a safety
reserve (the GPU runtime's own context, compute buffers, fragmentation). It
reads no hardware and loads nothing: callers pass the facts in, so every
decision can be tested as a table and explained by `doctor`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from localllm.engine.memory import compute_base, compute_per_ctx
from localllm.gguf_meta import GGUFInfo
from localllm.hardware import GPU

MiB = 1024**2
GPU_RUNTIME_RESERVE = 512 * MiB  # per GPU: the CUDA context, cuBLAS workspace, fragmentation
VRAM_SHARE = 0.95  # never plan the last 5% of free VRAM: other programs allocate too

_BLOCK = re.compile(r"^blk\.(\d+)\.")
_OUTPUT_TENSORS = ("output.weight", "output_norm.weight", "output_norm.bias", "output.bias")


@dataclass(frozen=True)
class LayerSizes:
    """Where a model's bytes live, from its GGUF header (sizes in bytes)."""

    blocks: tuple[int, ...]  # weights of each repeating block, blk.0 first
    output: int  # output head + final norm: offloaded as one more layer after all blocks
    input: int  # token embeddings: llama.cpp keeps them on the CPU
    kv_per_token: int  # f16 KV cache of one block for one token of context
    compute_base: int  # GPU compute buffer for one micro-batch, the part fixed in size
    compute_per_ctx: int  # ... and what it grows by per token of context

    @property
    def n_layers(self) -> int:
        """Offloadable layers as llama.cpp counts them: the blocks plus the output head."""
        return len(self.blocks) + 1

    def compute_bytes(self, n_ctx: int) -> int:
        return self.compute_base + self.compute_per_ctx * n_ctx


def layer_sizes(info: GGUFInfo) -> LayerSizes:
    """Per-layer weight sizes and the KV/compute cost, read from the tensor table."""
    n_blocks = info.block_count or 0
    blocks = [0] * n_blocks
    names = {t.name: t for t in info.tensors}
    input_bytes = output = 0
    for t in info.tensors:
        m = _BLOCK.match(t.name)
        if m and int(m.group(1)) < n_blocks:
            blocks[int(m.group(1))] += t.n_bytes
        elif t.name in _OUTPUT_TENSORS:
            output += t.n_bytes
        else:
            input_bytes += t.n_bytes
    embd = names.get("token_embd.weight")
    if "output.weight" not in names and embd is not None:
        output += embd.n_bytes  # tied embeddings: llama.cpp copies them into the output layer
    kv = info.kv_bytes_per_token() // n_blocks if n_blocks else 0
    return LayerSizes(
        blocks=tuple(blocks),
        output=output,
        input=input_bytes,
        kv_per_token=kv,
        compute_base=compute_base(info),  # the memory model's, as fit and plan use
        compute_per_ctx=compute_per_ctx(info),
    )


@dataclass(frozen=True)
class OffloadPlan:
    """The decision, with the numbers behind it (bytes)."""

    n_gpu_layers: int  # what llama.cpp gets: -1 = everything, 0 = CPU only
    offloaded: int  # layers on the GPU, output head counted as a layer
    n_layers: int  # blocks + output head
    backend: str | None  # the GPU backend layers go to; None when the build has none
    vram_free: int | None  # None when there is no reading (Metal, Vulkan without nvidia-smi)
    reserve: int  # kept free: runtime context, compute buffers, safety share
    gpu_bytes: int  # weights + KV cache planned onto the GPU
    reason: str  # one sentence for doctor
    notice: str | None = None  # shown on stderr when loading: the user should know

    def as_dict(self) -> dict:
        return asdict(self)


def plan_offload(
    sizes: LayerSizes,
    n_ctx: int,
    *,
    backend: str | None,
    gpus: list[GPU],
    unified_memory: bool = False,
    requested: int | None = None,
) -> OffloadPlan:
    """Choose n_gpu_layers: all when they fit, else as many as fit, else the CPU."""
    n = sizes.n_layers
    base = dict(n_layers=n, backend=backend, vram_free=None, reserve=0, gpu_bytes=0)
    if backend is None:
        return _cpu_only(base, gpus, requested)
    if requested is not None:
        k = n if requested < 0 else min(requested, n)
        return OffloadPlan(
            n_gpu_layers=-1 if k == n else k, offloaded=k, **base,
            reason=f"--gpu-layers {requested}: {k} of {n} layers on {backend}",
        )  # fmt: skip
    if unified_memory or not gpus:
        why = (
            f"{backend} shares memory with the CPU"
            if unified_memory
            else f"no free-VRAM reading for {backend} (nvidia-smi covers NVIDIA only)"
        )
        return OffloadPlan(
            n_gpu_layers=-1, offloaded=n, **base,
            reason=f"{why}: all {n} layers on the GPU (--gpu-layers N to limit)",
        )  # fmt: skip
    return _fit_in_vram(sizes, n_ctx, backend, gpus)


def _cpu_only(base: dict, gpus: list[GPU], requested: int | None) -> OffloadPlan:
    notice = None
    if gpus:
        notice = (
            f"{gpus[0].name} found, but this llama.cpp build has no GPU backend: running on "
            "the CPU; `localllm doctor` shows the command that reinstalls it with CUDA"
        )
    elif requested:
        notice = "--gpu-layers ignored: this llama.cpp build has no GPU backend"
    return OffloadPlan(
        n_gpu_layers=0, offloaded=0, **base, notice=notice,
        reason="this llama.cpp build has no GPU backend: every layer runs on the CPU",
    )  # fmt: skip


def _layer_costs(sizes: LayerSizes, n_ctx: int) -> list[int]:
    """Bytes each layer adds to the GPU, in the order llama.cpp offloads them."""
    kv = sizes.kv_per_token * n_ctx
    return [b + kv for b in reversed(sizes.blocks)] + [sizes.output]


def _fit_in_vram(sizes: LayerSizes, n_ctx: int, backend: str, gpus: list[GPU]) -> OffloadPlan:
    free = sum(g.vram_free for g in gpus)
    reserve = int(
        GPU_RUNTIME_RESERVE * len(gpus) + sizes.compute_bytes(n_ctx) + free * (1 - VRAM_SHARE)
    )
    budget, used, k = free - reserve, 0, 0
    for cost in _layer_costs(sizes, n_ctx):
        if used + cost > budget:
            break
        used, k = used + cost, k + 1
    n, gib = sizes.n_layers, free / 1024**3
    base = dict(n_layers=n, backend=backend, vram_free=free, reserve=reserve, gpu_bytes=used)
    if k == n:
        reason = f"all {n} layers and the KV cache at {n_ctx} context fit in {gib:.1f} GiB free"
        return OffloadPlan(n_gpu_layers=-1, offloaded=n, reason=reason, **base)
    if k == 0:
        reason = f"not one layer fits in {gib:.1f} GiB free VRAM after the reserve"
        notice = f"the model does not fit in {gib:.1f} GiB free VRAM: running on the CPU"
        return OffloadPlan(n_gpu_layers=0, offloaded=0, reason=reason, notice=notice, **base)
    reason = f"{k} of {n} layers fit in {gib:.1f} GiB free VRAM at {n_ctx} context"
    notice = f"{reason}; the rest run on the CPU (a smaller --ctx or quant would fit more)"
    return OffloadPlan(n_gpu_layers=k, offloaded=k, reason=reason, notice=notice, **base)
