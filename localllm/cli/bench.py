"""`localllm bench`: prefill and decode speed, bare llama.cpp vs localllm's own path."""

from __future__ import annotations

import json

import click

from localllm.cli.common import ctx_option, gpu_layers_option, load_model, quiet_option


@click.command()
@click.argument("model", required=False)
@ctx_option
@gpu_layers_option
@click.option("--prompt-tokens", type=click.IntRange(min=8), default=256, show_default=True)
@click.option("--decode-tokens", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@quiet_option
def bench(model, ctx, gpu_layers, prompt_tokens, decode_tokens, rounds, as_json, quiet):
    """Measure prefill and decode tokens/s of a bare llama_cpp loop and of localllm.

    Both run on the same loaded model, threads and context, alternating round
    by round; medians and their ratio (localllm / bare) are reported.

    \b
    Examples:
      localllm bench
      localllm bench smollm2-135m --rounds 5 --json
    """
    from localllm.cli.progress import TerminalProgress
    from localllm.config import Settings
    from localllm.engine.bench import run_bench

    progress = TerminalProgress(quiet=quiet)
    resolved, engine = load_model(Settings.from_env(), model, ctx, progress, gpu_layers)
    progress.start("benchmark rounds", rounds, unit="rounds")
    result = run_bench(
        engine, resolved.name, prompt_tokens=prompt_tokens, decode_tokens=decode_tokens,
        rounds=rounds, on_round=lambda done, total: progress.advance(1),
    )  # fmt: skip
    progress.finish()
    engine.close()
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(
        f"{result.model} on {result.backend}, {result.n_threads} threads, ctx {result.n_ctx}, "
        f"{result.prompt_tokens} prompt + {result.decode_tokens} decoded tokens, "
        f"median of {result.rounds}"
    )
    click.echo(f"{'':10}{'prefill tok/s':>15}{'decode tok/s':>15}")
    for label, s in (("bare", result.bare), ("localllm", result.localllm)):
        click.echo(f"{label:10}{s.prefill_tps:>15.1f}{s.decode_tps:>15.1f}")
    click.echo(f"{'ratio':10}{result.prefill_ratio:>15.3f}{result.decode_ratio:>15.3f}")
