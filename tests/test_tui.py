"""The chat app driven with Textual's pilot, on the real starter model."""

from __future__ import annotations

import pytest

from localllm.chat.conversation import ChatParams, Conversation, Message
from localllm.chat.history import History
from localllm.tui.app import make_app
from localllm.tui.controller import ChatController
from localllm.tui.screens.model_picker import ModelChoice, ModelPicker
from localllm.tui.widgets.prompt_input import PromptInput
from localllm.tui.widgets.transcript import (
    WINDOW,
    AnswerMessage,
    EarlierMessages,
    Transcript,
    UserMessage,
)

CAPITAL = "Which city is the capital of France?"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def chat(engine, tmp_path):
    history = History(tmp_path / "history.sqlite3")
    controller = ChatController(
        engine, "smollm2-135m:q4_1", history, save_dir=tmp_path,
        defaults=ChatParams(temperature=0.0, max_tokens=64),
    )  # fmt: skip
    models = [ModelChoice("smollm2-135m:q4_1", "smollm2-135m:q4_1  ·  94 MiB", True),
              ModelChoice("qwen2.5-1.5b", "↓ qwen2.5-1.5b", False)]  # fmt: skip
    app = make_app(controller, models=lambda: models)
    return app, controller, history


async def ask(app, pilot, text: str) -> None:
    prompt = app.screen.query_one(PromptInput)
    prompt.insert(text)
    await pilot.press("enter")


async def wait_for_answer(app, pilot) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause(0.1)


def answers(app) -> list[AnswerMessage]:
    return list(app.screen.query_one(Transcript).query(AnswerMessage))


async def test_an_answer_streams_into_the_transcript_and_is_stored(chat):
    app, controller, history = chat
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(app, pilot, CAPITAL)
        await wait_for_answer(app, pilot)
        (answer,) = answers(app)
        assert answer.text.strip()
        stored = history.get(controller.session.conv.id)
        assert [m.role for m in stored.messages] == ["user", "assistant"]
        assert stored.messages[1].content == answer.text.strip()
        assert "tok/s" in str(app.screen.query_one("#status").render())


async def test_escape_stops_the_answer_and_keeps_it_marked(chat):
    app, controller, history = chat
    controller.session.conv.params.max_tokens = 400
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(app, pilot, "Write a very long story about a dragon and a knight.")
        for _ in range(200):  # until some of the answer is on screen
            await pilot.pause(0.05)
            if answers(app) and len(answers(app)[0].text) > 20:
                break
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        (answer,) = answers(app)
        kept = answer.text
        await pilot.pause(0.5)
        assert answer.text == kept  # nothing arrives after the stop
        stored = history.get(controller.session.conv.id).messages[-1]
        assert stored.note == "stopped" and stored.completion_tokens < 400
        assert kept.strip() and stored.content.startswith(kept.strip()[:20])
        assert answer.has_class("-stopped")


async def test_regenerate_replaces_the_answer(chat):
    app, controller, history = chat
    controller.session.conv.params.temperature = 0.9
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(app, pilot, "Tell me something about cats.")
        await wait_for_answer(app, pilot)
        await pilot.press("ctrl+r")
        await wait_for_answer(app, pilot)
        assert len(answers(app)) == 1
        stored = history.get(controller.session.conv.id)
        assert [m.role for m in stored.messages] == ["user", "assistant"]
        assert stored.messages[1].content == answers(app)[0].text.strip()


async def test_the_model_picker_lists_local_models(chat):
    app, _, _ = chat
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, ModelPicker)
        options = app.screen.query_one("#models")
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert any("smollm2-135m:q4_1" in label and "MiB" in label for label in labels)
        assert any(label.startswith("↓ qwen2.5-1.5b") for label in labels)
        await pilot.press("escape")


async def test_typing_stays_responsive_while_an_answer_streams(chat):
    app, controller, _ = chat
    controller.session.conv.params.max_tokens = 400
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(app, pilot, "Write a very long story about a dragon and a knight.")
        await pilot.pause(0.3)
        status = app.screen.query_one("#status")
        assert status.busy  # the answer is still coming
        before = len(answers(app)[0].text)
        prompt = app.screen.query_one(PromptInput)
        await pilot.press(*"hello")
        assert prompt.text == "hello"
        for _ in range(100):  # redraws are paced (up to a second apart on a busy machine)
            await pilot.pause(0.05)
            if len(answers(app)[0].text) > before:
                break
        assert len(answers(app)[0].text) > before  # and kept coming while we typed
        await pilot.press("escape")
        await app.workers.wait_for_complete()


async def test_help_lists_the_keys(chat):
    app, _, _ = chat
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        table = app.screen.query_one("DataTable")
        keys = [table.get_row_at(i)[0] for i in range(table.row_count)]
        assert "Escape" in keys and "F2" in keys and "Ctrl+Q" in keys
        await pilot.press("escape")
        await pilot.pause()
        assert not app.screen.query("DataTable")


async def test_the_command_palette_opens_the_model_picker(chat):
    app, _, _ = chat
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Switch model")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, ModelPicker)


def long_conversation(turns: int) -> Conversation:
    conv = Conversation(model="smollm2-135m:q4_1", params=ChatParams(temperature=0.0, max_tokens=8))
    for i in range(turns):
        conv.messages.append(Message("user", f"question number {i}"))
        conv.messages.append(Message("assistant", f"answer {i}"))
    return conv


async def until(pilot, condition, seconds: float = 10.0) -> None:
    """Let the app run until condition() holds (layout and scrolling take a few frames)."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)


def app_with_conversation(engine, tmp_path, conv: Conversation):
    controller = ChatController(
        engine, "smollm2-135m:q4_1", History(tmp_path / "h.sqlite3"), conversation=conv
    )
    return make_app(controller), controller


def shown_texts(app) -> list[str]:
    return [w.text for w in app.screen.query_one(Transcript).messages]


async def test_a_long_conversation_shows_the_newest_and_the_rest_on_request(engine, tmp_path):
    app, _ = app_with_conversation(engine, tmp_path, long_conversation(40))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        transcript = app.screen.query_one(Transcript)
        texts = shown_texts(app)
        assert len(texts) == WINDOW and texts[0] == "question number 28"
        assert texts[-1] == "answer 39"
        marker = transcript.query_one(EarlierMessages)
        assert "56 earlier messages" in str(marker.render())
        assert transcript.scroll_y == transcript.max_scroll_y  # the newest text is in view

        transcript.scroll_home(animate=False)  # the reader scrolls to the top
        await until(pilot, lambda: len(shown_texts(app)) > WINDOW and transcript.scroll_y > 0)
        texts = shown_texts(app)
        assert len(texts) == 2 * WINDOW and texts[0] == "question number 16"
        assert "32 earlier messages" in str(marker.render())
        # the view stays on what the reader was looking at, not on the new top
        top_row = transcript.scroll_y
        assert top_row > 0
        first_before = next(w for w in transcript.messages if w.text == "question number 28")
        assert abs(first_before.virtual_region.y - top_row) <= 2

        for _ in range(2):  # and again: 24 more, then the last 8
            before = len(shown_texts(app))
            transcript.scroll_home(animate=False)
            await until(pilot, lambda n=before: len(shown_texts(app)) > n and transcript.scroll_y)
        assert shown_texts(app)[0] == "question number 0"
        assert not transcript.query(EarlierMessages)


async def test_clicking_the_marker_shows_earlier_messages(engine, tmp_path):
    app, _ = app_with_conversation(engine, tmp_path, long_conversation(20))
    async with app.run_test(size=(100, 80)) as pilot:  # tall enough that nothing scrolls
        await pilot.pause()
        assert shown_texts(app)[0] == "question number 8"
        await pilot.click(EarlierMessages)
        await until(pilot, lambda: shown_texts(app)[0] == "question number 0")
        assert shown_texts(app)[0] == "question number 0"
        assert len(shown_texts(app)) == 40


async def test_a_growing_session_keeps_a_bounded_number_of_widgets(engine, tmp_path):
    app, controller = app_with_conversation(engine, tmp_path, long_conversation(WINDOW // 2))
    async with app.run_test(size=(100, 30)) as pilot:
        for i in range(6):
            await ask(app, pilot, f"Say the number {i}.")
            await wait_for_answer(app, pilot)
        transcript = app.screen.query_one(Transcript)
        shown = transcript.messages
        assert WINDOW <= len(shown) <= WINDOW + 8 < len(controller.session.conv.messages)
        assert isinstance(shown[-2], UserMessage) and shown[-2].text == "Say the number 5."
        assert shown[-1].text.strip() == controller.session.conv.messages[-1].content
        hidden = len(controller.session.conv.messages) - len(shown)
        assert f"{hidden} earlier messages" in str(transcript.query_one(EarlierMessages).render())


async def test_the_sidebar_opens_and_deletes_stored_conversations(engine, tmp_path):
    history = History(tmp_path / "h.sqlite3")
    older = history.create(long_conversation(1))
    controller = ChatController(engine, "smollm2-135m:q4_1", history, long_conversation(2))
    history.create(controller.session.conv)
    app = make_app(controller)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        sidebar = app.screen.query_one("#sidebar")
        assert sidebar.option_count == 2 and sidebar.highlighted_id == controller.session.conv.id
        sidebar.focus()
        await pilot.press("down", "enter")
        await until(pilot, lambda: controller.session.conv.id == older.id)
        assert shown_texts(app) == ["question number 0", "answer 0"]
        sidebar.focus()  # opening moved the focus to the message box
        await pilot.press("delete")
        await until(pilot, lambda: sidebar.option_count == 1)
        assert older.id not in [c["id"] for c in history.list(10)]
