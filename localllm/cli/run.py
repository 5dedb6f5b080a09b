"""`localllm run`: stream one answer to stdout, as a new or continued conversation."""

from __future__ import annotations

import json
import sys

import click

from localllm.cli.common import (
    ctx_option,
    engine_option,
    gpu_layers_option,
    load_model,
    mark_with,
    model_option,
    quiet_option,
    watermark_for_command,
    watermark_option,
)
from localllm.cli.formatting import write_now


def _read_prompt(prompt: tuple[str, ...], progress) -> str:
    if prompt == ("-",) or (not prompt and not sys.stdin.isatty()):
        from localllm.documents.readers import decode_text

        text, encoding = decode_text(sys.stdin.buffer.read())
        if encoding not in ("utf-8", "utf-8-sig"):
            progress.message(f"stdin is not UTF-8: read it as {encoding}")
    elif not prompt:
        raise click.UsageError(
            'give a prompt, e.g. localllm run "Why is the sky blue?", or - for stdin'
        )
    else:
        # Arguments from a terminal in another encoding arrive with surrogate escapes.
        joined = " ".join(prompt).encode("utf-8", "surrogateescape")
        text = joined.decode("utf-8", "replace")
    if not text.strip():
        raise click.UsageError("the prompt is empty")
    return text


def _print_stats(resolved, engine, stats, prompt_tokens=None) -> None:
    report = {"model": resolved.name, "backend": engine.backend}
    report.update(stats.as_dict())
    report.update(
        n_ctx=engine.n_ctx, n_threads=engine.plan.n_threads,
        n_gpu_layers=engine.plan.n_gpu_layers, gpu_plan=engine.plan.offload_reason,
        load_s=round(engine.load_s, 3),
    )  # fmt: skip
    click.echo(json.dumps(report), err=True)


@click.command()
@model_option
@click.option("--system", default=None, help="System prompt for chat models.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option(
    "--temperature", type=click.FloatRange(min=0.0, max=5.0), default=0.7, show_default=True
)
@click.option("--seed", type=int, default=None, help="Same seed, same answer.")
@click.option("--stop", multiple=True, help="Stop when this text appears (repeatable).")
@ctx_option
@gpu_layers_option
@click.option("-c", "--continue", "continue_", is_flag=True, help="Continue the last conversation.")
@click.option("--id", "conversation_id", type=int, default=None, help="Continue conversation ID.")
@click.option(
    "--context-policy",
    type=click.Choice(["summary", "window", "off"]),
    default=None,
    help="When history outgrows the window: fold old turns into a summary (default), "
    "drop them, or refuse.",
)
@click.option("--no-save", is_flag=True, help="Do not store this exchange in the history.")
@click.option("--raw", is_flag=True, help="Plain completion, without the chat template.")
@click.option("--stats", is_flag=True, help="Print timing statistics as one JSON object on stderr.")
@click.option(
    "--think/--no-think",
    default=None,
    help="Thinking models: reason before answering, or not (default: the model's).",
)
@click.option("--show-thinking", is_flag=True, help="Print a thinking model's reasoning on stderr.")
@watermark_option
@quiet_option
@engine_option
@click.argument("prompt", nargs=-1)
def run(model, system, max_tokens, temperature, seed, stop, ctx, gpu_layers, continue_,
        conversation_id, context_policy, no_save, raw, stats, think, show_thinking, watermark,
        quiet, engine_name, prompt):  # fmt: skip
    """Stream one answer from a model to stdout.

    PROMPT is the question (several words are joined); use - (or pipe text in)
    to read it from stdin. Each exchange is stored in the history;
    --continue adds a turn to the last conversation, keeping its context.

    \b
    Examples:
      localllm run "Why is the sky blue?"
      localllm run -m smollm2-135m --temperature 0 --stats "Which city is the capital of France?"
      echo "Name three primary colours." | localllm run -
      localllm run --continue "And why is it red at sunset?"
      localllm run -m qwen3.5-9b@gpu "Summarise the plot of Don Quijote."
      localllm run -m qwen3.5-2b --no-think "¿Cuál es la capital de Perú?"
    """
    from localllm.cli.progress import TerminalProgress
    from localllm.config import Settings

    settings = Settings.from_env()
    progress = TerminalProgress(quiet=quiet)
    text = _read_prompt(prompt, progress)
    mark = watermark_for_command(settings, watermark)
    if raw or stop:
        if continue_ or conversation_id is not None:
            raise click.UsageError("--raw and --stop do not work with --continue or --id")
        if think is not None or show_thinking:
            raise click.UsageError("--think, --no-think and --show-thinking need a chat turn: "
                                   "drop --raw and --stop")  # fmt: skip
        resolved, engine = load_model(
            settings, model, ctx, progress, gpu_layers, engine=engine_name
        )
        mark_with(settings, mark, resolved, engine)
        sampling = dict(max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop,
                        watermark=mark)  # fmt: skip
        _run_plain(engine, resolved, text, system, raw, progress, stats, **sampling)
        return
    from localllm.cli.conversation import open_conversation, stream_turn

    conv, history = open_conversation(
        settings, model=model, system=system, continue_=continue_,
        conversation_id=conversation_id, no_save=no_save, max_tokens=max_tokens,
        temperature=temperature, seed=seed, policy=context_policy, think=think,
    )  # fmt: skip
    model_ref = conv.model if model is None else model
    if engine_name and model is None and not (continue_ or conversation_id is not None):
        model_ref = None  # the engine's own model, not this machine's default
    resolved, engine = load_model(
        settings, model_ref, ctx, progress, gpu_layers, engine=engine_name
    )
    conv.model = resolved.name
    mark_with(settings, mark, resolved, engine)
    if not engine.info.chat_template:
        ignored = [flag for flag, given in (
            ("--system", system is not None),
            ("--continue/--id", continue_ or conversation_id is not None),
        ) if given]  # fmt: skip
        progress.message(
            "this model has no chat template (a base model): continuing the prompt as plain "
            "text, not stored in the history"
            + (f"; {' and '.join(ignored)} ignored" if ignored else "")
        )
        sampling = dict(max_tokens=max_tokens, temperature=temperature, seed=seed, stop=(),
                        watermark=mark)  # fmt: skip
        _run_plain(engine, resolved, text, None, True, progress, stats, **sampling)
        return
    done = stream_turn(settings, engine, conv, history, text, progress, mark, show_thinking)
    if stats:
        _print_stats(resolved, engine, done.stats)
    engine.close()


def _run_plain(engine, resolved, text, system, raw, progress, stats, **sampling) -> None:
    """One answer, not stored: a raw completion, or a chat turn with stop strings."""
    from localllm.engine import Finished, SamplingParams
    from localllm.engine.base import Reasoning

    if raw or not engine.info.chat_template:
        tokens = engine.tokenize(text, special=False)
    else:
        messages = [{"role": "system", "content": system}] if system else []
        tokens = engine.chat_tokens([*messages, {"role": "user", "content": text}])
    params = SamplingParams(**{**sampling, "stop": tuple(sampling["stop"])})
    events = engine.stream(tokens, params)
    if not raw and engine.info.chat_template:  # a thinking model's reasoning is not the answer
        from localllm.engine.reasoning import split_reply

        events = split_reply(events, engine, tokens)
    reasoned = 0
    for event in events:
        if isinstance(event, Finished):
            write_now("\n")
            if stats:
                _print_stats(resolved, engine, event.stats)
        elif isinstance(event, Reasoning):
            reasoned += len(event.text)
        else:
            write_now(event.text)
    if reasoned:
        progress.message(f"the model reasoned ({reasoned} characters, not shown) before "
                         "answering")  # fmt: skip
    engine.close()
