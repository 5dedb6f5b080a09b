"""Layout snapshots of the chat app at 80x24 and 120x40 (fake engine: deterministic text).

Regenerate after an intended layout change with `pytest tests/test_tui_snapshots.py
--snapshot-update`, and look at the SVGs before committing them.
"""

from __future__ import annotations

import pytest
from fake_engine import FakeEngine

from localllm.chat.conversation import ChatParams
from localllm.chat.history import History
from localllm.tui.app import make_app
from localllm.tui.controller import ChatController
from localllm.tui.screens.model_picker import ModelChoice
from localllm.tui.widgets.prompt_input import PromptInput

ANSWER = (
    "Paris is the capital of France.\n\n```python\nprint('bonjour')\n```\n\n"
    "- It lies on the **Seine**\n- About 2 million people live there"
)
SIZES = [(80, 24), (120, 40)]


def build_app(tmp_path):
    history = History(tmp_path / "history.sqlite3")
    earlier = ChatController(FakeEngine(["Hello!"]), "fake-model", history)
    list(earlier.session.send("An earlier chat about tea"))
    controller = ChatController(
        FakeEngine([ANSWER]), "fake-model:q4_k_m", history,
        defaults=ChatParams(temperature=0.0, max_tokens=64),
    )  # fmt: skip
    models = [
        ModelChoice("fake-model:q4_k_m", "fake-model:q4_k_m  ·  94 MiB  ·  ctx 2048", True),
        ModelChoice("qwen2.5-1.5b", "↓ qwen2.5-1.5b  ·  1.5B  ·  multilingual chat", False),
    ]
    return make_app(controller, models=lambda: models)


def _steady(pilot) -> PromptInput:
    """The input's blinking cursor would make screenshots depend on timing."""
    prompt = pilot.app.screen.query_one(PromptInput)
    prompt.cursor_blink = False
    return prompt


async def _converse(pilot) -> None:
    _steady(pilot).insert("Which city is the capital of France?")
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare, tmp_path, size):
    assert snap_compare(build_app(tmp_path), terminal_size=size, run_before=_converse)


@pytest.mark.parametrize("size", SIZES)
def test_sidebar_hidden(snap_compare, tmp_path, size):
    async def hide(pilot):
        await _converse(pilot)
        await pilot.press("ctrl+b")
        await pilot.pause()

    assert snap_compare(build_app(tmp_path), terminal_size=size, run_before=hide)


def _pressing(key: str):
    async def run_before(pilot) -> None:
        _steady(pilot)
        await pilot.press(key)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_model_picker(snap_compare, tmp_path, size):
    assert snap_compare(build_app(tmp_path), terminal_size=size, run_before=_pressing("f2"))


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare, tmp_path, size):
    assert snap_compare(build_app(tmp_path), terminal_size=size, run_before=_pressing("f1"))


def test_main_screen_in_the_light_theme(snap_compare, tmp_path):
    """The same screen under Textual's light theme: every colour comes from theme variables."""

    async def light(pilot):
        pilot.app.theme = "textual-light"
        await _converse(pilot)

    assert snap_compare(build_app(tmp_path), terminal_size=(80, 24), run_before=light)
