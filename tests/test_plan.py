"""Load planning: context, threads and GPU layers from the header and the machine."""

from localllm.engine import LoadOptions
from localllm.engine.plan import DEFAULT_CTX, make_plan
from localllm.gguf_meta import read_gguf_info
from localllm.hardware import GPU

GiB = 1024**3


def plan(info, **kw):
    args = dict(ram_available=16 * GiB, physical_cores=4, gpu_backend=None, gpus=[])
    options = kw.pop("options", LoadOptions())
    args.update(kw)
    return make_plan(info, options, **args)


def test_defaults_to_the_trained_context_up_to_the_default_cap(starter_path):
    p = plan(read_gguf_info(starter_path))
    assert p.n_ctx == min(8192, DEFAULT_CTX)
    assert p.n_threads == 4 and p.n_gpu_layers == 0 and not p.notes


def test_requested_context_beyond_training_is_clamped_with_a_note(starter_path):
    p = plan(read_gguf_info(starter_path), options=LoadOptions(n_ctx=100_000))
    assert p.n_ctx == 8192
    assert "trained" in p.notes[0]


def test_little_free_ram_caps_the_context(starter_path):
    info = read_gguf_info(starter_path)
    p = plan(info, ram_available=info.size + 400 * 1024**2, options=LoadOptions(n_ctx=8192))
    assert 512 <= p.n_ctx < 8192
    assert "free RAM" in p.notes[0]


def test_everything_goes_on_a_gpu_that_fits(starter_path):
    info = read_gguf_info(starter_path)
    p = plan(info, gpu_backend="CUDA", gpus=[GPU("test", 8 * GiB, 8 * GiB)])
    assert p.n_gpu_layers == -1 and not p.notes
    assert "all 31 layers" in p.offload_reason


def test_part_of_the_model_goes_on_a_small_gpu(starter_path):
    info = read_gguf_info(starter_path)
    p = plan(info, gpu_backend="CUDA", gpus=[GPU("small", GiB, GiB)])
    assert 0 < p.n_gpu_layers < info.block_count
    assert f"{p.n_gpu_layers} of 31 layers fit" in p.notes[0]


def test_a_smaller_context_lets_more_layers_onto_the_gpu(starter_path):
    info = read_gguf_info(starter_path)
    gpus = [GPU("small", GiB, GiB)]
    at_8k = plan(info, gpu_backend="CUDA", gpus=gpus, options=LoadOptions(n_ctx=8192))
    at_2k = plan(info, gpu_backend="CUDA", gpus=gpus, options=LoadOptions(n_ctx=2048))
    assert at_2k.n_gpu_layers == -1 and 0 < at_8k.n_gpu_layers < 30


def test_cpu_only_build_never_offloads_and_says_so_when_a_gpu_is_there(starter_path):
    p = plan(read_gguf_info(starter_path), gpus=[GPU("test", 8 * GiB, 8 * GiB)])
    assert p.n_gpu_layers == 0
    assert "no GPU backend" in p.notes[0]


def test_gpu_layers_option_overrides_the_plan(starter_path):
    info = read_gguf_info(starter_path)
    gpus = [GPU("test", 8 * GiB, 8 * GiB)]
    p = plan(info, gpu_backend="CUDA", gpus=gpus, options=LoadOptions(n_gpu_layers=5))
    assert p.n_gpu_layers == 5 and "--gpu-layers 5" in p.offload_reason


def test_eval_windows_are_planned_with_their_logits_in_ram(starter_path):
    """`eval --ctx 100000` once asked llama.cpp for ~20 GB of logits without a word."""
    from localllm.engine.scoring import scoring_plan
    from localllm.gguf_meta import read_gguf_info

    info = read_gguf_info(starter_path)
    plan = scoring_plan(info, 100_000, ram_available=2 * 2**30)
    n_vocab = info.get("tokenizer.ggml.tokens")
    assert plan.n_ctx * n_vocab * 4 < 2 * 2**30  # the logits fit in the RAM there is
    assert any("more than free RAM allows" in note for note in plan.notes)
    roomy = scoring_plan(info, 100_000, ram_available=64 * 2**30)
    assert roomy.n_ctx == 8192  # the model's trained length, said too
    assert any("exceeds the model's trained 8192" in note for note in roomy.notes)
    assert scoring_plan(info, 64, ram_available=64 * 2**30).n_ctx == 64  # small windows stay
    assert scoring_plan(info, 512, gpu_layers=0, ram_available=64 * 2**30).n_gpu_layers == 0
