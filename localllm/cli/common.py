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


def command_host(settings: Settings, progress, n_ctx=None, gpu_layers=None, *,
                 in_child_process: bool = False):  # fmt: skip
    """The ModelHost a command loads its models through (one process, no keep-alive).

    in_child_process loads each model in a process of its own (engine/process.py), for the
    chat app, whose drawing would otherwise compete with generation for the GIL."""
    from localllm.engine import LoadOptions
    from localllm.engine.host import Loader, ModelHost
    from localllm.store.resolve import host_resolver

    if in_child_process:
        from localllm.engine.process import load_process_engine as load_engine
    else:
        from localllm.engine.llama import load_engine

    options = LoadOptions(n_ctx=n_ctx, n_gpu_layers=gpu_layers, verbose=settings.debug)
    return ModelHost(host_resolver(settings, progress), {"chat": Loader(load_engine)},
                     options=options, keep_alive=None)  # fmt: skip


def load_model(
    settings: Settings,
    model_ref: str | None,
    n_ctx: int | None,
    progress,
    gpu_layers=None,
    *,
    in_child_process: bool = False,
):
    """Resolve (fetching if needed) and load a model; returns (loaded model, engine).

    The engine is the caller's to close when the command ends."""
    host = command_host(settings, progress, n_ctx, gpu_layers, in_child_process=in_child_process)
    loaded = host.acquire(model_ref)
    for note in loaded.engine.plan.notes:
        progress.message(note)
    return loaded, loaded.engine
