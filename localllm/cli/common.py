"""Options and steps shared by the commands that load a model."""

from __future__ import annotations

import click

from localllm.config import Settings


def model_option(func):
    return click.option(
        "-m",
        "--model",
        "model",
        default=None,
        metavar="MODEL",
        help="Catalogue name (smollm2-135m[:QUANT]), registered name, or path to a .gguf file. "
        "Default: smollm2-135m, fetched on first use.",
    )(func)


def engine_option(func):
    return click.option(
        "--engine",
        "engine_name",
        default=None,
        metavar="NAME",
        help="Run on the remote engine [engines.NAME] of config.toml (vLLM, llama-server, "
        "Ollama, another localllm serve); same as -m MODEL@NAME. Default: this machine.",
    )(func)


def ctx_option(func):
    return click.option(
        "--ctx",
        type=click.IntRange(min=64),
        default=None,
        help="Context window in tokens (default: the model's, capped at 8192 and by free RAM).",
    )(func)


def gpu_layers_option(func):
    return click.option(
        "--gpu-layers",
        "gpu_layers",
        type=click.IntRange(min=-1),
        default=None,
        metavar="N",
        help="Layers to offload to the GPU (-1: all, 0: none). Default: as many as fit in "
        "free VRAM (`localllm doctor MODEL` explains the choice).",
    )(func)


def quiet_option(func):
    return click.option("-q", "--quiet", is_flag=True, help="No progress or notices on stderr.")(
        func
    )


def watermark_option(func):
    return click.option(
        "--watermark",
        is_flag=True,
        help="Mark the text with this installation's green-list watermark "
        "(`localllm detect` finds it).",
    )(func)


def watermark_for_command(settings: Settings, wanted: bool):
    """The WatermarkSpec when --watermark was given, else None."""
    if not wanted:
        return None
    from localllm.watermarking import watermark_spec

    return watermark_spec(settings)


def mark_with(settings: Settings, spec, resolved, engine) -> None:
    """Record the model's vocabulary for the detector; refuse an engine that cannot mark."""
    if spec is None:
        return
    from localllm.errors import RequestError
    from localllm.watermarking import record_vocabulary, vocabulary_fingerprint

    if hasattr(engine, "_n_vocab"):
        fingerprint = vocabulary_fingerprint(engine)
    elif hasattr(engine, "apply"):  # the chat app's model, in a process of its own
        fingerprint = engine.apply(vocabulary_fingerprint)
    else:
        raise RequestError(f"{resolved.name} runs on a remote engine, which cannot add this "
                           "machine's watermark: run it here, or start that server with "
                           "`localllm serve --watermark`")  # fmt: skip
    record_vocabulary(settings, resolved.name, fingerprint)


AUTO_SLOTS = 0  # command_host's parallel: as many slots as fit, up to MOST_AUTO_SLOTS
# Past 8 sequences a CPU's batched decode stops gaining (llama-batched-bench, SmolLM2-135M on
# 2 cores: 97, 115, 155, 151 tok/s at 1, 4, 8, 16), and every slot holds a window of KV cache.
MOST_AUTO_SLOTS = 8


def command_host(settings: Settings, progress, n_ctx=None, gpu_layers=None, *,
                 in_child_process: bool = False, engine: str | None = None,
                 parallel: int = 1, flash_attn: bool | None = None,
                 cpu_slot_ctx: int | None = None):  # fmt: skip
    """The ModelHost a command loads its models through (one process, no keep-alive).

    in_child_process loads each model in a process of its own (engine/process.py), for the
    chat app, whose drawing would otherwise compete with generation for the GIL. parallel > 1
    loads the batching engine with that many slots; AUTO_SLOTS, with as many as fit in free
    RAM (up to 8), each of cpu_slot_ctx tokens on a CPU where given (load_batched).
    MODEL@NAME references (every reference, with engine) go to the remote engine NAME
    instead."""
    from localllm.engine import LoadOptions
    from localllm.engine.host import Loader, ModelHost
    from localllm.remote_engines import with_remote_engines
    from localllm.store.resolve import host_resolver

    if in_child_process:
        from localllm.engine.process import load_process_engine as load_engine
    else:
        from localllm.engine.llama import load_engine

    options = LoadOptions(n_ctx=n_ctx, n_gpu_layers=gpu_layers, flash_attn=flash_attn,
                          verbose=settings.debug)  # fmt: skip
    loader = Loader(load_engine)
    if parallel == AUTO_SLOTS and not in_child_process:
        from localllm.engine.batch import load_batched

        loader = Loader(lambda path, opts: load_batched(path, opts, most=MOST_AUTO_SLOTS,
                                                        cpu_slot_ctx=cpu_slot_ctx),
                        n_seq=MOST_AUTO_SLOTS)  # fmt: skip
    elif parallel > 1 and not in_child_process:
        from localllm.engine.batch import BatchEngine

        loader = Loader(lambda path, opts: BatchEngine.load(path, opts, parallel=parallel),
                        n_seq=parallel)  # fmt: skip
    resolve = with_remote_engines(settings, host_resolver(settings, progress), engine)
    loaders = {"chat": loader, "embed": Loader(_load_embedding)}
    return ModelHost(resolve, loaders, options=options, keep_alive=None)


def _load_embedding(path, options):
    from localllm.engine.embed import EmbeddingEngine

    return EmbeddingEngine.load(path, options)


def load_model(
    settings: Settings,
    model_ref: str | None,
    n_ctx: int | None,
    progress,
    gpu_layers=None,
    *,
    in_child_process: bool = False,
    engine: str | None = None,
    parallel: int = 1,
    flash_attn: bool | None = None,
    cpu_slot_ctx: int | None = None,
):
    """Resolve (fetching if needed) and load a model, or connect to it on a remote engine;
    returns (loaded model, engine). The engine is the caller's to close when it ends."""
    host = command_host(settings, progress, n_ctx, gpu_layers,
                        in_child_process=in_child_process, engine=engine,
                        parallel=parallel, flash_attn=flash_attn,
                        cpu_slot_ctx=cpu_slot_ctx)  # fmt: skip
    loaded = host.acquire(model_ref)
    for note in loaded.engine.plan.notes:
        progress.message(note)
    return loaded, loaded.engine
