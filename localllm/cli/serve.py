"""`localllm serve` and `localllm ps`."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

import click

from localllm.cli.common import ctx_option, gpu_layers_option
from localllm.errors import ConfigError, ServerError

DEFAULT_PORT = 8434  # serve/app.py's; repeated so `localllm ps` needs no web stack


def _duration(value: str) -> float | None:
    from localllm.serve.ollama_api import parse_keep_alive

    try:
        seconds = parse_keep_alive(value)
    except Exception:
        raise click.BadParameter(f"{value!r} is not a duration such as 5m, 30s or -1") from None
    return 300.0 if seconds == "default" else seconds


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. Anything but loopback needs --api-key (or --no-auth).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    metavar="MODEL",
    help="Load MODEL at start and keep it loaded (repeatable); the first is the "
    "default for /tokenize and friends.",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=None,
    help="Requests generated at once per model (slots). Default: up to 4, as many "
    "as fit in free RAM at the context size.",
)
@ctx_option
@gpu_layers_option
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    metavar="KEY",
    help="Require this key (Authorization: Bearer KEY); repeatable. "
    "Default: LOCALLLM_API_KEY (comma-separated for several).",
)
@click.option("--no-auth", is_flag=True, help="Serve a non-loopback address without a key.")
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Another Host header to answer to (DNS-rebinding guard), e.g. a LAN name.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let browser pages from ORIGIN call the API (default: none).",
)
@click.option(
    "--keep-alive",
    default="5m",
    show_default=True,
    help="How long an idle model stays loaded (30s, 5m, 1h; 0 unloads at once; "
    "-1 keeps it). Requests may set their own (Ollama's keep_alive).",
)
@click.option(
    "--context-policy",
    type=click.Choice(["off", "window", "summary"]),
    default="off",
    show_default=True,
    help="When messages overflow the window: refuse with the counts (off), drop "
    "the oldest turns (window) or fold them into a summary (summary).",
)
@click.option(
    "--max-queue",
    type=click.IntRange(0),
    default=64,
    show_default=True,
    help="Requests that may wait for a slot; more get 503 with Retry-After.",
)
@click.option(
    "--max-body",
    type=click.IntRange(1024),
    default=8 * 2**20,
    show_default=True,
    help="Largest request body in bytes.",
)
@click.option(
    "--allow-pull",
    is_flag=True,
    help="Let clients pull catalogue models (/api/pull, or naming one not pulled).",
)
@click.option(
    "--watermark",
    is_flag=True,
    help="Mark every answer with this installation's green-list watermark; no request "
    "can turn it off (`localllm detect` finds it).",
)
@click.option("--think/--no-think", default=None,
              help="Thinking models, for requests that do not say (chat_template_kwargs."
                   "enable_thinking or think): reason first, or not.")  # fmt: skip
@click.option("--flash-attn/--no-flash-attn", default=None,
              help="llama.cpp's flash attention. Default: on a GPU only. On a CPU it serves "
                   "many short requests faster (as llama-server runs), with answers that "
                   "round a little differently from one sequence's.")  # fmt: skip
def serve(host, port, models, parallel, ctx, gpu_layers, api_keys, no_auth, allow_hosts,
          cors_origins, keep_alive, context_policy, max_queue, max_body, allow_pull,
          watermark, think, flash_attn):  # fmt: skip
    """Serve the OpenAI and Ollama APIs on this machine, many requests at once.

    \b
    Examples:
      localllm serve -m smollm2-135m
      localllm serve --port 11434            # a drop-in for Ollama clients
      localllm serve --host 0.0.0.0 --api-key "$(openssl rand -hex 16)"
      localllm serve --watermark             # every answer marked, whatever clients ask
      localllm serve --parallel 8 --flash-attn   # many short requests, faster on a CPU
    \b
    Then: OPENAI_BASE_URL=http://127.0.0.1:8434/v1 OPENAI_API_KEY=none your-tool
    """
    from localllm.config import Settings

    settings = Settings.from_env()
    keys = api_keys or tuple(k for k in os.environ.get("LOCALLLM_API_KEY", "").split(",") if k)
    from localllm.serve.app import LOOPBACK_BINDS, ServeConfig

    if host not in LOOPBACK_BINDS and not keys and not no_auth:
        raise ConfigError(
            f"serving {host} would let anyone who reaches it use your models: give --api-key "
            "KEY (or LOCALLLM_API_KEY), or --no-auth if the network is yours alone"
        )
    if no_auth and host not in LOOPBACK_BINDS:
        click.echo(f"warning: serving {host} without an API key (--no-auth)", err=True)
    config = ServeConfig(
        host=host, port=port, parallel=parallel or _default_parallel(settings, models, ctx),
        n_ctx=ctx, gpu_layers=gpu_layers, api_keys=keys, allow_hosts=allow_hosts,
        cors_origins=cors_origins, keep_alive=_duration(keep_alive),
        context_policy=context_policy, max_queue=max_queue, max_body=max_body,
        allow_pull=allow_pull, models=models, verbose=settings.debug, watermark=watermark,
        think=think, flash_attn=flash_attn,
    )  # fmt: skip
    _run(config, settings)


def _default_parallel(settings, models, ctx) -> int:
    """Slots from free RAM and the context size of the first model (4 at most)."""
    from localllm import hardware
    from localllm.engine.plan import DEFAULT_CTX, default_parallel
    from localllm.gguf_meta import read_gguf_info
    from localllm.store.resolve import find_local

    entry = find_local(settings, models[0]) if models else None
    if entry is None:
        return 4
    info = read_gguf_info(entry.path)
    n_ctx = ctx or min(DEFAULT_CTX, info.context_length or DEFAULT_CTX)
    return default_parallel(info, n_ctx, hardware.memory().available)


def _run(config, settings) -> None:
    import uvicorn

    from localllm.serve.app import create_app

    app = create_app(config, settings)
    where = f"[{config.host}]" if ":" in config.host else config.host
    auth = "API key required" if config.api_keys else "no API key (loopback only)"
    if config.flash_attn is not None:
        auth += f", flash attention {'on' if config.flash_attn else 'off'}"
    click.echo(f"localllm serving http://{where}:{config.port} ({config.parallel} slots per "
               f"model, {auth}); OpenAI API at /v1, Ollama API at /api. Ctrl+C stops.",
               err=True)  # fmt: skip
    level = "info" if config.verbose else "warning"
    try:
        uvicorn.run(app, host=config.host, port=config.port, log_level=level,
                    timeout_graceful_shutdown=5)  # fmt: skip
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        raise ServerError(
            f"could not serve on {config.host}:{config.port}: the port is taken "
            "or the address is not this machine's; choose another --port"
        ) from exc


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
def ps(host, port, as_json):
    """Show the models a running `localllm serve` has loaded.

    \b
    Examples:
      localllm ps
      localllm ps --port 11434 --json
    """
    url = f"http://{host}:{port}/api/ps"
    request = urllib.request.Request(url)
    key = os.environ.get("LOCALLLM_API_KEY", "").split(",")[0]
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            data = json.load(response)
    except urllib.error.HTTPError as exc:
        raise ServerError(f"the server at {host}:{port} answered {exc.code}: "
                          f"{_error_text(exc)}") from None  # fmt: skip
    except (urllib.error.URLError, OSError):
        raise ServerError(f"no localllm server at {host}:{port}: start one with "
                          "`localllm serve`, or give --host/--port") from None  # fmt: skip
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    _print_table(data.get("models", []))


def _error_text(exc) -> str:
    try:
        body = json.loads(exc.read())
        err = body.get("error")
        return err.get("message") if isinstance(err, dict) else str(err)
    except Exception:
        return exc.reason


def _print_table(models: list[dict]) -> None:
    if not models:
        click.echo("no models loaded")
        return
    click.echo(f"{'NAME':28} {'SIZE':>9} {'PROCESSOR':10} {'CONTEXT':>8} {'SLOTS':>9}  UNTIL")
    for m in models:
        slots = m.get("slots") or {}
        busy = f"{slots.get('slots_processing', 0)}/{slots.get('slots_total', 0)}" if slots else "-"
        processor = "GPU" if m.get("size_vram") else "CPU"
        size, until = m["size"] / 2**20, m.get("expires_at", "")
        click.echo(f"{m['name']:28} {size:>6.0f} MiB {processor:10} "
                   f"{m.get('context_length', 0):>8} {busy:>9}  {until}")  # fmt: skip
    sys.stdout.flush()
