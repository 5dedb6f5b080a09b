"""Named remote engines ([engines.NAME] in config.toml) and model references that use them.

`-m MODEL@ENGINE` or `--engine NAME` sends a command's text to that engine;
nothing leaves the machine otherwise. A key is read from the environment
variable the config names (api_key_env), never from a file, never printed.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from localllm.config import Settings, load_user_config
from localllm.errors import ConfigError


@dataclass(frozen=True)
class RemoteRef:
    model: str | None  # None: the engine's configured model, else its first
    engine: str


def configured(settings: Settings) -> dict:
    """Every [engines.NAME] of config.toml, as EndpointConfig, in file order."""
    from localllm.engine.http import EndpointConfig

    engines = load_user_config(settings).get("engines", {})
    out = {}
    for name, values in engines.items():
        env = values.get("api_key_env")
        out[name] = EndpointConfig(
            name=name, url=values["url"], model=values.get("model"),
            api_key=os.environ.get(env) if env else None, api_key_env=env,
            n_ctx=values.get("n_ctx"), parallel=values.get("parallel"),
            timeout_s=float(values.get("timeout_s", 600.0)),
        )  # fmt: skip
    return out


def endpoint(settings: Settings, name: str):
    engines = configured(settings)
    if name not in engines:
        known = ", ".join(engines) or "none yet"
        raise ConfigError(
            f"no engine named {name!r} in {settings.config_dir / 'config.toml'} (configured: "
            f'{known}); add [engines.{name}] with url = "http://HOST:PORT/v1"'
        )
    config = engines[name]
    if config.api_key_env and not config.api_key:
        raise ConfigError(f"engine {name} takes its key from ${config.api_key_env}, which is "
                          "not set: export it and try again")  # fmt: skip
    return config


def split_ref(settings: Settings, ref: str | None, engine: str | None) -> RemoteRef | None:
    """The remote engine a model reference names (MODEL@ENGINE, or --engine), else None.

    A local path may hold an @, so MODEL@NAME is remote only when NAME is a configured
    engine; --engine with a reference that also names one is a usage error."""
    model, at = ref, None
    if ref and "@" in ref:
        head, _, tail = ref.rpartition("@")
        if tail in configured(settings):
            model, at = head or None, tail
    if engine and at and engine != at:
        raise ConfigError(f"--engine {engine} and {ref} name two engines: give one")
    name = engine or at
    return RemoteRef(model, name) if name else None


def on_engine(ref: str | None, engine: str) -> str:
    """ref as a reference to engine: MODEL@ENGINE (@ENGINE: the engine's default model)."""
    if ref and ref.endswith("@" + engine):
        return ref
    return f"{ref or ''}@{engine}"


def with_remote_engines(settings: Settings, resolve, engine: str | None = None):
    """A host resolver that sends MODEL@ENGINE (or every reference, with --engine) to an
    HTTP engine and everything else to resolve (the local store)."""
    from localllm.engine.host import HostedModel

    def resolve_any(ref: str | None):
        remote = split_ref(settings, ref, engine)
        if remote is None:
            return resolve(ref)
        config = endpoint(settings, remote.engine)
        label = f"{remote.model or config.model or 'default'}@{remote.engine}"
        return HostedModel(label, None, open=lambda: connect(config, remote.model))

    return resolve_any


def connect(config, model: str | None = None):
    from localllm.engine.http import HttpEngine

    return HttpEngine.connect(config, model)


def probe(config) -> dict:
    """`engines test`: reachability, models, window, slots, a short answer and its speed."""
    from localllm.engine.base import Finished, SamplingParams

    started = time.perf_counter()
    engine = connect(config)
    try:
        reached_s = time.perf_counter() - started
        prompt = engine.chat_tokens([{"role": "user", "content": "Say OK."}])
        params = SamplingParams(max_tokens=16, temperature=0.0, seed=0)
        text, stats = "", None
        for event in engine.stream(prompt, params, threading.Event()):
            if isinstance(event, Finished):
                stats = event.stats
            else:
                text += event.text
        return {"engine": config.name, "url": config.shown, "model": engine.model,
                "reached_s": round(reached_s, 3), "n_ctx": engine.n_ctx,
                "parallel": engine.parallel, "exact_tokens": engine.exact,
                "answer": text.strip(), "ttft_s": round(stats.ttft_s, 3),
                "decode_tps": round(stats.decode_tps, 1),
                "notes": list(engine.plan.notes)}  # fmt: skip
    finally:
        engine.close()
