"""Settings: where localllm keeps its files and how it may behave.

Built once by the CLI from the environment and passed down; no module reads
environment variables at import time, so tests can build their own. Every
folder comes from platformdirs, or lies under LOCALLLM_HOME when it is set.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "localllm"
DEFAULT_MODEL = "smollm2-135m"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    home: Path | None  # LOCALLLM_HOME when set: everything localllm writes lives below it
    data_dir: Path
    cache_dir: Path
    config_dir: Path
    offline: bool = False
    debug: bool = False
    hf_endpoint: str | None = None  # HF_ENDPOINT: a mirror, or a test server

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def hf_cache_dir(self) -> Path:
        """Where hub downloads go: Hugging Face's own cache, shared with other tools.

        Under LOCALLLM_HOME when it is set, since then everything we write lives there.
        """
        if self.home is not None:
            return self.cache_dir / "huggingface" / "hub"
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.json"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        home = environ.get("LOCALLLM_HOME")
        common = {
            # HF_HUB_OFFLINE is honoured too: a user who set it means "no network".
            "offline": _flag(environ.get("LOCALLLM_OFFLINE"))
            or _flag(environ.get("HF_HUB_OFFLINE")),
            "debug": _flag(environ.get("LOCALLLM_DEBUG")),
            "hf_endpoint": environ.get("HF_ENDPOINT") or None,
        }
        if home:
            root = Path(home).expanduser().resolve()
            return cls(
                home=root,
                data_dir=root / "data",
                cache_dir=root / "cache",
                config_dir=root / "config",
                **common,
            )
        import platformdirs

        return cls(
            home=None,
            data_dir=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            cache_dir=Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
            config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
            **common,
        )


# What config.toml may hold: section -> key -> (accepted types, check, what a good value is).
def _choice(*options):
    return (str,), lambda v: v in options, "one of " + ", ".join(options)


_NUMBER = (int, float)
CONFIG_KEYS: dict[str, dict[str, tuple]] = {
    "chat": {
        "model": ((str,), lambda v: bool(v.strip()), "a model name"),
        "system_prompt": ((str,), lambda v: True, "text"),
        "context_policy": _choice("summary", "window", "off"),
        "temperature": (_NUMBER, lambda v: 0 <= v <= 5, "a number from 0 to 5"),
        "max_tokens": ((int,), lambda v: v >= 1, "a whole number of at least 1"),
        "watermark": _choice("on", "off"),  # mark every answer of the chat app
    },
    "guardrails": {
        "blocked_phrases": (
            (list,),
            lambda v: all(isinstance(p, str) for p in v),
            "a list of strings",
        ),
        "max_tries": ((int,), lambda v: 1 <= v <= 20, "a whole number from 1 to 20"),
    },
    "index": {  # localllm/index/: the embedding model a new index gets its vectors from
        "embedding_model": ((str,), lambda v: bool(v.strip()), "a model name"),
    },
    "watermark": {  # localllm/watermarking.py; LOCALLLM_WATERMARK_KEY wins over key
        "key": ((str,), lambda v: len(v) >= 16, "a secret of at least 16 characters"),
        "gamma": ((float,), lambda v: 0 < v < 1, "a share between 0 and 1, such as 0.25"),
        "delta": (_NUMBER, lambda v: 0 < v <= 20, "a bias above 0, such as 2.0"),
        "context": ((int,), lambda v: 1 <= v <= 16, "a whole number of tokens from 1 to 16"),
    },
}


def _env_name(value: str) -> bool:
    """An environment variable's name, and not (as is easy to paste) the key itself."""
    looks_like_key = value.lower().startswith(("sk-", "sk_", "hf_")) or len(value) > 40
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value)) and not looks_like_key


# [engines.NAME]: a remote OpenAI-compatible engine (localllm/remote_engines.py uses them).
ENGINE_KEYS: dict[str, tuple] = {
    "url": ((str,), lambda v: v.startswith(("http://", "https://")), "an http(s):// URL"),
    "model": ((str,), lambda v: bool(v.strip()), "a model name the engine serves"),
    "api_key_env": ((str,), _env_name, "the NAME of an environment variable, not the key"),
    "n_ctx": ((int,), lambda v: v >= 64, "a whole number of at least 64"),
    "parallel": ((int,), lambda v: 1 <= v <= 1024, "a whole number from 1 to 1024"),
    "timeout_s": (_NUMBER, lambda v: v > 0, "a number of seconds above 0"),
}


def load_user_config(settings: Settings) -> dict:
    """config.toml from the config folder ({} when absent), validated.

    Raises ConfigError naming the file and key when it is malformed or holds a bad value.
    """
    from localllm.errors import ConfigError

    path = settings.config_dir / "config.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}): fix or remove it") from None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}): fix or remove it") from None
    _validate_config(config, path)
    return config


def _validate_config(config: dict, path: Path) -> None:
    from localllm.errors import ConfigError

    for section, values in config.items():
        if section == "engines" and isinstance(values, dict):
            _validate_engines(values, path)
            continue
        known = CONFIG_KEYS.get(section)
        if known is None or not isinstance(values, dict):
            raise ConfigError(
                f"{path}: unknown section [{section}]; the sections are "
                + ", ".join(f"[{s}]" for s in (*CONFIG_KEYS, "engines.NAME"))
            )
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"{path}: unknown key {section}.{key}; [{section}] takes " + ", ".join(known)
                )
            types, check, expected = known[key]
            # bool is an int to Python, never a number to a user
            if isinstance(value, bool) or not isinstance(value, types) or not check(value):
                raise ConfigError(f"{path}: {section}.{key} = {value!r} must be {expected}")


def _validate_engines(engines: dict, path: Path) -> None:
    from localllm.errors import ConfigError

    for name, values in engines.items():
        where = f"{path}: [engines.{name}]"
        if not isinstance(values, dict) or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{where} must be a table named with letters, digits, - and _")
        if "api_key" in values:
            raise ConfigError(f"{where} holds an API key: keys are not kept in files; put it in "
                              "an environment variable and name that with api_key_env")  # fmt: skip
        if "url" not in values:
            raise ConfigError(f'{where} needs url = "http://HOST:PORT/v1"')
        for key, value in values.items():
            if key not in ENGINE_KEYS:
                raise ConfigError(f"{where}: unknown key {key}; it takes " + ", ".join(ENGINE_KEYS))
            types, check, expected = ENGINE_KEYS[key]
            if isinstance(value, bool) or not isinstance(value, types) or not check(value):
                shown = "…" if key == "api_key_env" else repr(value)  # it may be a pasted key
                raise ConfigError(f"{where}: {key} = {shown} must be {expected}")
