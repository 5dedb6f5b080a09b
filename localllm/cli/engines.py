"""`localllm engines`: the remote engines of config.toml, and a check of each."""

from __future__ import annotations

import json

import click


@click.group()
def engines():
    """Remote OpenAI-compatible engines ([engines.NAME] in config.toml).

    \b
    An engine is a server you run elsewhere: vLLM, llama-server, Ollama, LM Studio
    or another `localllm serve`. Name it in config.toml, then use it with
    --engine NAME or -m MODEL@NAME on run, chat and summarize:
      [engines.gpu]
      url = "http://gpu-box:8000/v1"
      model = "Qwen/Qwen3-8B"
      api_key_env = "GPU_API_KEY"     # the key stays in the environment

    \b
    Examples:
      localllm engines list
      localllm engines test gpu
    """


@engines.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_engines(as_json):
    """The configured engines (keys are never shown, only where they come from)."""
    from localllm.config import Settings
    from localllm.remote_engines import configured

    settings = Settings.from_env()
    rows = [{"name": c.name, "url": c.shown, "model": c.model, "api_key_env": c.api_key_env,
             "key_set": bool(c.api_key), "n_ctx": c.n_ctx, "parallel": c.parallel}
            for c in configured(settings).values()]  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no engines yet: add [engines.NAME] to {settings.config_dir / 'config.toml'}"
                   " (`localllm engines --help` shows how)")  # fmt: skip
        return
    for r in rows:
        key = (f"key from ${r['api_key_env']} ({'set' if r['key_set'] else 'NOT set'})"
               if r["api_key_env"] else "no key")  # fmt: skip
        click.echo(f"{r['name']:<12} {r['url']:<36} {r['model'] or '(server default)':<24} {key}")


@engines.command(name="test")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def test_engine(name, as_json):
    """Reach engine NAME: its models, window, slots, a one-line answer and its speed."""
    from localllm.config import Settings
    from localllm.remote_engines import endpoint, probe

    result = probe(endpoint(Settings.from_env(), name))
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo(f"{result['engine']}: reached {result['url']} in {result['reached_s']:.2f} s")
    click.echo(f"  model {result['model']}, window {result['n_ctx']} tokens, "
               f"{result['parallel']} slot(s), token counts "
               f"{'exact' if result['exact_tokens'] else 'estimated'}")  # fmt: skip
    click.echo(f"  answer {result['answer']!r}: first token {result['ttft_s']:.2f} s, "
               f"{result['decode_tps']:.1f} tok/s")  # fmt: skip
    for note in result["notes"]:
        click.echo(f"  note: {note}")
