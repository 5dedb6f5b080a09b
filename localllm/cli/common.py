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


def load_model(
    settings: Settings,
    model_ref: str | None,
    n_ctx: int | None,
    progress,
    gpu_layers=None,
    *,
    in_child_process: bool = False,
):
    """Resolve (fetching if needed) and load a model; returns (resolved model, engine).

    in_child_process loads it in a process of its own (engine/remote.py), for the chat
    app, whose drawing would otherwise compete with generation for the GIL."""
    from localllm.engine import LoadOptions
    from localllm.store.probe import check_loadable
    from localllm.store.resolve import mark_used, resolve_model

    if in_child_process:
        from localllm.engine.remote import load_remote_engine as load_engine
    else:
        from localllm.engine.llama import load_engine

    model = resolve_model(
        settings, model_ref, progress, show_pip_progress=getattr(progress, "bars", False)
    )
    check_loadable(settings, model.path)  # a file new to us: would llama.cpp crash on it?
    options = LoadOptions(n_ctx=n_ctx, n_gpu_layers=gpu_layers, verbose=settings.debug)
    engine = load_engine(model.path, options)
    for note in engine.plan.notes:
        progress.message(note)
    mark_used(settings, model)
    return model, engine
