"""Settings: where localllm keeps its files and how it may behave.

Built once by the CLI from the environment and passed down; no module reads
environment variables at import time, so tests can build their own. Every
folder comes from platformdirs, or lies under LOCALLLM_HOME when it is set.
"""

from __future__ import annotations

import os
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


def load_user_config(settings: Settings) -> dict:
    """config.toml from the config folder ({} when absent); raises LocalLLMError when malformed."""
    path = settings.config_dir / "config.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        from localllm.errors import LocalLLMError

        raise LocalLLMError(f"{path} is not valid TOML ({exc}): fix or remove it") from None
