"""`localllm run`: stream one answer to stdout."""

from __future__ import annotations

import json
import sys

import click

from localllm.cli.common import ctx_option, load_model, model_option, quiet_option


def _read_prompt(prompt: tuple[str, ...]) -> str:
    if prompt == ("-",) or (not prompt and not sys.stdin.isatty()):
        text = sys.stdin.read()
    elif not prompt:
        raise click.UsageError(
            'give a prompt, e.g. localllm run "Why is the sky blue?", or - for stdin'
        )
    else:
        text = " ".join(prompt)
    if not text.strip():
        raise click.UsageError("the prompt is empty")
    return text


@click.command()
@model_option
@click.option("--system", default=None, help="System prompt for chat models.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option(
    "--temperature", type=click.FloatRange(min=0.0, max=5.0), default=0.7, show_default=True
)
@click.option(
    "--seed", type=int, default=None, help="Fix sampling, so the same call gives the same answer."
)
@click.option("--stop", multiple=True, help="Stop when this text appears (repeatable).")
@ctx_option
@click.option(
    "--raw", is_flag=True, help="Plain completion: do not apply the model's chat template."
)
@click.option("--stats", is_flag=True, help="Print timing statistics as one JSON object on stderr.")
@quiet_option
@click.argument("prompt", nargs=-1)
def run(model, system, max_tokens, temperature, seed, stop, ctx, raw, stats, quiet, prompt):
    """Stream one answer from a model to stdout.

    PROMPT is the question (several words are joined); use - (or pipe text in)
    to read it from stdin.

    \b
    Examples:
      localllm run "Why is the sky blue?"
      localllm run -m smollm2-135m --temperature 0 --stats "Which city is the capital of France?"
      echo "Name three primary colours." | localllm run -
    """
    from localllm.cli.progress import TerminalProgress
    from localllm.config import Settings
    from localllm.engine import Finished, SamplingParams

    settings = Settings.from_env()
    text = _read_prompt(prompt)
    progress = TerminalProgress(quiet=quiet)
    resolved, engine = load_model(settings, model, ctx, progress)
    if raw or not engine.info.chat_template:
        if not raw:
            progress.message("this model has no chat template: continuing the prompt as plain text")
        tokens = engine.tokenize(text, special=False)
    else:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": text}
        ]
        tokens = engine.chat_tokens(messages)
    params = SamplingParams(
        max_tokens=max_tokens, temperature=temperature, seed=seed, stop=tuple(stop)
    )
    out = sys.stdout
    for event in engine.stream(tokens, params):
        if isinstance(event, Finished):
            out.write("\n")
            out.flush()
            if stats:
                report = {"model": resolved.name, "backend": engine.backend}
                report.update(event.stats.as_dict())
                report.update(
                    n_ctx=engine.n_ctx, n_threads=engine.plan.n_threads,
                    n_gpu_layers=engine.plan.n_gpu_layers, load_s=round(engine.load_s, 3),
                )  # fmt: skip
                click.echo(json.dumps(report), err=True)
        else:
            out.write(event.text)
            out.flush()
    engine.close()
