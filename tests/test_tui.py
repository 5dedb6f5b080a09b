"""The chat app driven with Textual's pilot, on the real starter model."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

from localllm.chat.conversation import ChatParams, Conversation, Message
from localllm.chat.history import History
from localllm.errors import ModelLoadError
from localllm.tui.app import make_app
from localllm.tui.controller import ChatController
from localllm.tui.screens.chat import ChatScreen
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


@pytest.fixture
def two_stored(engine, tmp_path):
    """An app showing the newer of two stored conversations; returns (app, controller,
    history, the older conversation)."""
    history = History(tmp_path / "h.sqlite3")
    older = history.create(long_conversation(1))
    controller = ChatController(engine, "smollm2-135m:q4_1", history, long_conversation(2))
    history.create(controller.session.conv)
    return make_app(controller), controller, history, older


async def test_the_sidebar_opens_and_deletes_stored_conversations(two_stored):
    app, controller, history, older = two_stored
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


class HeldEngine:
    """The real engine, whose first answer waits after its first token until released:
    how long the model's own answer runs differs between CPUs."""

    def __init__(self, engine):
        self._engine, self.release = engine, threading.Event()

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def stream(self, *args, **kwargs):
        for i, event in enumerate(self._engine.stream(*args, **kwargs)):
            yield event
            if i == 0:
                self.release.wait(30)


async def test_a_message_sent_while_an_answer_streams_is_queued_and_sent_next(chat):
    app, controller, history = chat
    held = HeldEngine(controller.engine)
    controller.session.engine = held
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(app, pilot, "Write a very long story about a dragon and a knight.")
        await until(pilot, lambda: app.screen.busy, 30)
        await ask(app, pilot, "And which is the warmest?")
        await pilot.pause()
        held.release.set()
        queued = app.screen.query_one(Transcript).messages[-1]
        assert isinstance(queued, UserMessage) and queued.text == "And which is the warmest?"
        assert queued.has_class("-queued") and "queued" in str(queued.render())
        assert app.screen.query_one(PromptInput).text == ""
        conv_id = controller.session.conv.id
        await until(pilot, lambda: len(history.get(conv_id).messages) == 4, 60)
        await until(pilot, lambda: not app.screen.busy, 60)
        stored = history.get(conv_id).messages
        assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
        assert stored[2].content == "And which is the warmest?"
        shown = app.screen.query_one(Transcript).messages
        assert shown[-2] is queued and not queued.has_class("-queued")
        assert isinstance(shown[-1], AnswerMessage) and shown[-1].text.strip()


async def test_edit_mode_ends_when_another_conversation_opens(two_stored):
    app, controller, history, older = two_stored
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        sidebar = app.screen.query_one("#sidebar")
        sidebar.focus()  # in the message box Ctrl+E is the text area's "end of line"
        await pilot.press("ctrl+e")
        assert app.screen.query_one(PromptInput).text == "question number 1"
        sidebar.focus()
        await pilot.press("down", "enter")  # open the other conversation instead
        await until(pilot, lambda: controller.session.conv.id == older.id)
        app.screen.query_one(PromptInput).clear()
        await ask(app, pilot, "Say hello.")
        await wait_for_answer(app, pilot)
    stored = [m.content for m in history.get(older.id).messages]
    assert len(stored) == 4 and stored[:3] == ["question number 0", "answer 0", "Say hello."]


async def test_quitting_mid_answer_stops_it_and_keeps_it(chat):
    app, controller, history = chat
    controller.session.conv.params.max_tokens = 400
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(app, pilot, "Write a very long story about a dragon and a knight.")
        await until(pilot, lambda: bool(answers(app)) and len(answers(app)[0].text) > 20)
        await app.run_action("quit")  # what Ctrl+Q does
    # The app's exit waits for the generation thread: it must stop now, not at the end.
    stored = []
    for _ in range(40):
        stored = history.get(controller.session.conv.id).messages
        if len(stored) == 2:
            break
        await asyncio.sleep(0.05)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].note == "stopped" and stored[1].completion_tokens < 400


class SlowPull:
    """A download in many small chunks, as the picker's pull callable sees it."""

    def __init__(self, chunks: int = 400, hold: threading.Event | None = None):
        self.chunks, self.hold = chunks, hold  # hold: the bytes wait until it is set
        self.started, self.ended = threading.Event(), threading.Event()

    def __call__(self, name, progress) -> None:
        try:
            progress.start(f"downloading {name}", self.chunks)
            self.started.set()
            if self.hold is not None:
                self.hold.wait(10)
            for _ in range(self.chunks):
                time.sleep(0.01)
                progress.advance(1)
        finally:
            self.ended.set()


def app_with_a_download(engine, tmp_path, pull: SlowPull):
    controller = ChatController(engine, "smollm2-135m:q4_1", History(tmp_path / "h.sqlite3"))
    models = [ModelChoice("qwen2.5-1.5b", "↓ qwen2.5-1.5b", False)]
    return make_app(controller, models=lambda: models, pull=pull)


async def start_download(pilot, pull: SlowPull) -> None:
    await pilot.press("f2")
    await pilot.pause()
    await pilot.press("home", "enter")
    await until(pilot, pull.started.is_set)
    assert pull.started.is_set()


async def test_quitting_stops_a_download(engine, tmp_path):
    pull = SlowPull()
    app = app_with_a_download(engine, tmp_path, pull)
    async with app.run_test(size=(100, 30)) as pilot:
        await start_download(pilot, pull)
        await app.run_action("quit")  # what Ctrl+Q does
        for _ in range(40):  # the exit waits for the download's thread: it must end now
            if pull.ended.is_set():
                break
            await asyncio.sleep(0.05)
        assert pull.ended.is_set()


async def test_escape_during_a_download_leaves_the_chat_screen(engine, tmp_path):
    hold = threading.Event()
    pull = SlowPull(chunks=0, hold=hold)
    app = app_with_a_download(engine, tmp_path, pull)
    async with app.run_test(size=(100, 30)) as pilot:
        try:
            await start_download(pilot, pull)
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, ChatScreen)
        finally:
            hold.set()  # the last bytes arrive after the picker closed
        await until(pilot, pull.ended.is_set)
        await pilot.pause(0.2)
        assert isinstance(app.screen, ChatScreen)


class BreakingEngine:
    """The real model, whose answers break off after a few tokens while `broken` is set
    (as when the model's process dies mid-answer)."""

    def __init__(self, engine):
        self._engine = engine
        self.broken = True

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def stream(self, prompt_tokens, params, cancel=None):
        with contextlib.closing(self._engine.stream(prompt_tokens, params, cancel)) as events:
            for i, event in enumerate(events):
                if self.broken and i == 2:
                    raise ModelLoadError("the model process stopped")
                yield event


async def test_a_failed_answer_gives_the_question_back_and_roles_alternate(engine, tmp_path):
    broken = BreakingEngine(engine)
    history = History(tmp_path / "h.sqlite3")
    controller = ChatController(broken, "smollm2-135m:q4_1", history, long_conversation(1))
    history.create(controller.session.conv)
    app = make_app(controller)
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(app, pilot, CAPITAL)
        await wait_for_answer(app, pilot)
        prompt = app.screen.query_one(PromptInput)
        assert prompt.text == CAPITAL  # back in the box, to send again
        assert shown_texts(app) == ["question number 0", "answer 0"]
        stored = history.get(controller.session.conv.id).messages
        assert [m.role for m in stored] == ["user", "assistant"]
        broken.broken = False
        await pilot.press("enter")
        await wait_for_answer(app, pilot)
    stored = history.get(controller.session.conv.id).messages
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[2].content == CAPITAL


@pytest.mark.one_build  # which passages are given and shown: retrieval's, on any kernels
async def test_attached_documents_ground_answers_and_the_app_shows_their_sources(chat, tmp_path):
    import shutil
    from pathlib import Path

    from localllm.tui.screens.attach import AttachScreen
    from localllm.tui.widgets.transcript import Notice

    app, controller, history = chat
    docs = tmp_path / "docs"
    shutil.copytree(Path(__file__).parent / "data" / "ask", docs)
    question = "¿En que año se fundo la Universidad de Salamanca?"
    async with app.run_test(size=(110, 40)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(app.screen, AttachScreen)
        app.screen.query_one("#attach-sources").value = str(docs)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert controller.grounder is not None
        await ask(app, pilot, question)
        await wait_for_answer(app, pilot)
        notices = [n.text for n in app.screen.query_one(Transcript).query(Notice)]
        assert any(n.endswith("passages from docs") for n in notices)
        shown = [n for n in notices if n.startswith(("Sources:", "The answer cites no"))]
        assert len(shown) == 1 and "salamanca.md" in shown[0], notices
    conv = history.get(controller.session.conv.id)
    asked, answered = conv.messages
    assert any("1218" in p["text"] for p in asked.sources)  # the passage it needed was given
    assert all(p in asked.sources for p in answered.sources or [])  # cited only what it had
    assert conv.attached == str(docs)
    # The next turn carries the question and answer, not the passages again.
    conv.messages.append(type(asked)("user", "¿Y quién fue rector en 1900?"))
    prompt = controller.engine.detokenize(controller.session.context.prepare(conv).tokens)
    assert "Fragmentos:" not in prompt and asked.sources[0]["text"] not in prompt
    assert question in prompt
