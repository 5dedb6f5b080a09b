"""GPU offload planning: how many layers go to the GPU, as table cases.

The planner is a pure function of per-layer sizes, context and free VRAM, so
these tests hand it machines and models as data. The model shapes are those
of real checkpoints (an 8B Llama at Q4_K_M, a 1.5B at Q8_0) and of the
starter model's own header.
"""

from __future__ import annotations

import math

import pytest

from localllm.engine.offload import (
    GPU_RUNTIME_RESERVE,
    VRAM_SHARE,
    LayerSizes,
    layer_sizes,
    plan_offload,
)
from localllm.gguf_meta import read_gguf_info
from localllm.hardware import GPU

MiB, GiB = 1024**2, 1024**3


def llama_sizes(blocks: int, block_mib: float, output_mib: float, kv_heads: int, vocab: int,
                width: int, heads: int) -> LayerSizes:  # fmt: skip
    """Sizes shaped like a GGUF of a Llama-style model (head dim 128, f16 KV cache)."""
    return LayerSizes(
        blocks=(int(block_mib * MiB),) * blocks,
        output=int(output_mib * MiB),
        input=int(output_mib * MiB),
        kv_per_token=kv_heads * 128 * 2 * 2,
        compute_base=512 * (vocab * 4 + width * 32),
        compute_per_ctx=512 * heads * 4,
    )


# Llama 3.1 8B Instruct Q4_K_M: 32 blocks of ~120 MiB, a 128k vocabulary, 8 KV heads.
LLAMA_8B = llama_sizes(32, 120, 200, kv_heads=8, vocab=128256, width=4096, heads=32)
# Qwen2.5 1.5B Q8_0: 28 blocks of ~47 MiB, 2 KV heads.
QWEN_1_5B = llama_sizes(28, 47, 230, kv_heads=2, vocab=151936, width=1536, heads=12)


def gpu(free_gib: float, name: str = "NVIDIA test") -> GPU:
    free = int(free_gib * GiB)
    return GPU(name, max(free, 8 * GiB), free)


# (id, model, VRAM free per GPU, GPUs, context, expected n_gpu_layers)
CASES = [
    ("8b-24g-8k-all", LLAMA_8B, 24, 1, 8192, -1),
    ("8b-8g-8k-all", LLAMA_8B, 8, 1, 8192, -1),
    ("8b-6g-8k-partial", LLAMA_8B, 6, 1, 8192, 29),
    ("8b-6g-2k-all", LLAMA_8B, 6, 1, 2048, -1),
    ("8b-6g-32k-fewer", LLAMA_8B, 6, 1, 32768, 11),
    ("8b-2g-8k-few", LLAMA_8B, 2, 1, 8192, 3),
    ("8b-1g-8k-cpu", LLAMA_8B, 1, 1, 8192, 0),
    ("8b-2x4g-8k", LLAMA_8B, 4, 2, 8192, -1),
    ("1.5b-6g-32k-all", QWEN_1_5B, 6, 1, 32768, -1),
    ("1.5b-4g-32k-blocks-not-head", QWEN_1_5B, 4, 1, 32768, 28),
    ("1.5b-2g-8k-partial", QWEN_1_5B, 2, 1, 8192, 16),
    ("1.5b-2g-32k-few", QWEN_1_5B, 2, 1, 32768, 4),
    ("1.5b-1g-4k-cpu", QWEN_1_5B, 1, 1, 4096, 0),
]


@pytest.mark.parametrize(
    "model,free_gib,n_gpus,n_ctx,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_layers_on_the_gpu(model, free_gib, n_gpus, n_ctx, expected):
    gpus = [gpu(free_gib) for _ in range(n_gpus)]
    plan = plan_offload(model, n_ctx, backend="CUDA", gpus=gpus)
    assert plan.n_gpu_layers == expected
    assert plan.offloaded == (model.n_layers if expected == -1 else expected)
    if expected != 0:
        assert plan.gpu_bytes + plan.reserve <= plan.vram_free  # never planned past free VRAM
    if expected == -1:
        assert plan.notice is None  # nothing worth telling the user
    elif expected == 0:
        assert "running on the CPU" in plan.notice
    else:
        assert f"{expected} of {model.n_layers} layers" in plan.notice


def test_the_output_head_is_the_last_layer_to_go():
    """When every block fits but the output head does not, llama.cpp gets n_blocks, not -1."""
    n_ctx = 8192
    blocks = sum(LLAMA_8B.blocks) + len(LLAMA_8B.blocks) * LLAMA_8B.kv_per_token * n_ctx
    fixed = GPU_RUNTIME_RESERVE + LLAMA_8B.compute_bytes(n_ctx)
    just_blocks = math.ceil((blocks + fixed) / VRAM_SHARE) + 1
    plan = plan_offload(LLAMA_8B, n_ctx, backend="CUDA", gpus=[GPU("g", 8 * GiB, just_blocks)])
    assert plan.n_gpu_layers == len(LLAMA_8B.blocks) == 32
    with_output = math.ceil((blocks + LLAMA_8B.output + fixed) / VRAM_SHARE) + 1
    plan = plan_offload(LLAMA_8B, n_ctx, backend="CUDA", gpus=[GPU("g", 8 * GiB, with_output)])
    assert plan.n_gpu_layers == -1


@pytest.mark.parametrize("model", [LLAMA_8B, QWEN_1_5B], ids=["8b", "1.5b"])
def test_more_vram_never_means_fewer_layers_and_more_context_never_more(model):
    def layers(free_gib, n_ctx):
        p = plan_offload(model, n_ctx, backend="CUDA", gpus=[gpu(free_gib)])
        return p.offloaded

    contexts = (512, 2048, 8192, 32768)
    for n_ctx in contexts:
        counts = [layers(g / 4, n_ctx) for g in range(1, 100)]
        assert counts == sorted(counts)
    for free in (1, 2, 4, 6, 8, 16):
        counts = [layers(free, c) for c in contexts]
        assert counts == sorted(counts, reverse=True)


def test_cpu_only_build_with_a_gpu_runs_on_the_cpu_and_says_why():
    plan = plan_offload(LLAMA_8B, 8192, backend=None, gpus=[gpu(24, "NVIDIA RTX 4090")])
    assert plan.n_gpu_layers == 0
    assert "NVIDIA RTX 4090" in plan.notice and "localllm doctor" in plan.notice
    assert "no GPU backend" in plan.reason


def test_cpu_only_build_without_a_gpu_stays_quiet():
    plan = plan_offload(LLAMA_8B, 8192, backend=None, gpus=[])
    assert plan.n_gpu_layers == 0 and plan.notice is None


@pytest.mark.parametrize(
    "backend,gpus,unified",
    [("Metal", [], True), ("Vulkan", [], False), ("ROCm", [], False)],
    ids=["metal-unified", "vulkan-no-reading", "rocm-no-reading"],
)
def test_without_a_vram_reading_everything_is_offloaded(backend, gpus, unified):
    plan = plan_offload(LLAMA_8B, 8192, backend=backend, gpus=gpus, unified_memory=unified)
    assert plan.n_gpu_layers == -1 and plan.vram_free is None
    assert backend in plan.reason and "--gpu-layers" in plan.reason


@pytest.mark.parametrize(
    "requested,expected", [(0, 0), (10, 10), (33, -1), (99, -1), (-1, -1)]
)  # fmt: skip
def test_gpu_layers_override_wins_over_the_fit(requested, expected):
    plan = plan_offload(LLAMA_8B, 8192, backend="CUDA", gpus=[gpu(1)], requested=requested)
    assert plan.n_gpu_layers == expected
    assert f"--gpu-layers {requested}" in plan.reason


def test_gpu_layers_override_on_a_cpu_build_is_ignored_with_a_notice():
    plan = plan_offload(LLAMA_8B, 8192, backend=None, gpus=[], requested=20)
    assert plan.n_gpu_layers == 0
    assert "--gpu-layers ignored" in plan.notice


def test_layer_sizes_come_from_the_starter_models_tensors(starter_path):
    info = read_gguf_info(starter_path)
    sizes = layer_sizes(info)
    assert len(sizes.blocks) == info.block_count == 30
    assert len(set(sizes.blocks)) == 1  # a plain Llama: every block the same size
    block0 = sum(t.n_bytes for t in info.tensors if t.name.startswith("blk.0."))
    assert sizes.blocks[0] == block0
    embd = next(t for t in info.tensors if t.name == "token_embd.weight")
    # SmolLM2 ties its output head to the embeddings: llama.cpp offloads a copy of them.
    assert not any(t.name == "output.weight" for t in info.tensors)
    assert sizes.input == embd.n_bytes and sizes.output > embd.n_bytes
    assert sum(sizes.blocks) + sizes.output + sizes.input == (
        sum(t.n_bytes for t in info.tensors) + embd.n_bytes
    )
    assert sizes.kv_per_token * 30 == info.kv_bytes_per_token()
