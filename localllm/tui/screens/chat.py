"""The main screen: conversation list, transcript, message box and status bar.

Generation runs in a worker thread (ChatSession.send) and reaches the screen
only through messages, so typing, scrolling and Escape stay responsive while
the model works. The screen owns the cancel flag the worker checks between
tokens.
"""

from __future__ import annotations

import os
import threading
import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from localllm.chat.grounding import sources_note
from localllm.tui.messages import (
    AnswerChunk,
    AnswerFinished,
    AnswerRetracted,
    ContextNoticed,
    GenerationFailed,
    ReasoningChunk,
)
from localllm.tui.pacing import DrawPacer, ui_cpu_budget
from localllm.tui.widgets.prompt_input import PromptInput
from localllm.tui.widgets.sidebar import Sidebar
from localllm.tui.widgets.status_bar import StatusBar
from localllm.tui.widgets.transcript import AnswerMessage, Entry, Transcript, UserMessage


class _TokenBatch:
    """Collects streamed text in the worker thread and hands it over at the pacer's rate.

    The first piece goes at once (the answer has started); after that each hand-over
    is one redraw, spaced by DrawPacer so the UI does not slow the model down.
    """

    def __init__(self, post, interval):
        self._post = post
        self._interval = interval  # () -> seconds between hand-overs
        self._parts: list[str] = []
        self._last = float("-inf")

    def add(self, text: str) -> None:
        self._parts.append(text)
        if time.monotonic() - self._last >= self._interval():
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self._post(AnswerChunk("".join(self._parts)))
            self._parts.clear()
        self._last = time.monotonic()


class ChatScreen(Screen):
    BINDINGS = [
        Binding("escape", "stop", "Stop", priority=True),
        Binding("ctrl+r", "regenerate", "Regenerate"),
        Binding("ctrl+e", "edit_last", "Edit last", show=False),
        Binding("ctrl+y", "copy_last", "Copy", show=False),
        Binding("ctrl+n", "new_conversation", "New"),
        Binding("ctrl+b", "toggle_sidebar", "Chats"),
        Binding("delete", "delete_conversation", "Delete chat", show=False),
    ]

    def __init__(self, controller):
        super().__init__()
        self.controller = controller  # tui.app.ChatController: session, history, models
        self.cancel = threading.Event()
        self.answer: AnswerMessage | None = None
        self.reasoning = None  # the ReasoningNote of the answer streaming now, if it reasons
        self.asking: UserMessage | None = None  # the question being answered (not on regenerate)
        self.queued: list[UserMessage] = []  # sent while an answer was coming, oldest first
        self.editing = False
        self.pacer = DrawPacer()

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Sidebar(id="sidebar")
            with Vertical(id="main"):
                yield Transcript(id="transcript")
                yield PromptInput(id="prompt")
                yield StatusBar(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one(PromptInput).focus()
        await self.show_conversation()

    def on_unmount(self) -> None:
        # The app is closing, and its exit waits for the worker thread: stop the answer now
        # (it is kept, marked stopped), instead of waiting for all of it.
        self.cancel.set()

    # -- showing state -----------------------------------------------------------

    async def show_conversation(self) -> None:
        self.editing = False  # Ctrl+E was about the conversation shown until now
        entries, given = [], None
        for m in self.controller.session.conv.messages:
            if m.role == "assistant" and m.reasoning:
                entries.append(Entry("notice", "▸ reasoned before answering"))
            entries.append(Entry(m.role, m.content, m.note))
            if m.role == "user":
                given = m.sources
            elif note := sources_note(m.sources, given):
                entries.append(Entry("notice", note))
        await self.query_one(Transcript).show(entries)
        self.refresh_sidebar()
        self.refresh_status()

    def refresh_sidebar(self) -> None:
        rows = self.controller.conversations()
        self.query_one(Sidebar).show_conversations(rows, self.controller.session.conv.id)

    def refresh_status(self, tokens_per_second: float | None = None) -> None:
        status = self.query_one(StatusBar)
        c = self.controller
        status.model, status.backend = c.model_name, c.backend
        status.window, status.used = c.window, c.context_used()
        if tokens_per_second is not None:
            status.tokens_per_second = tokens_per_second

    @property
    def busy(self) -> bool:
        return self.query_one(StatusBar).busy

    def _set_busy(self, busy: bool) -> None:
        self.query_one(StatusBar).busy = busy
        # A blinking cursor is two redraws a second of CPU the model could use.
        self.query_one(PromptInput).cursor_blink = not busy

    # -- sending -----------------------------------------------------------------

    @on(PromptInput.Submitted)
    async def send(self, event: PromptInput.Submitted) -> None:
        transcript = self.query_one(Transcript)
        if self.busy:  # the input is already cleared: keep the text, and send it next
            self.queued.append(await transcript.add_user(event.text, queued=True))
            return
        edit, self.editing = self.editing, False
        if edit:
            await self._remove_last_turn_widgets(include_user=True)
        await self._start_answer(await transcript.add_user(event.text))
        self.generate("edit" if edit else "send", event.text)

    async def _send_queued(self) -> None:
        question = self.queued.pop(0)
        question.set_queued(False)
        await self._start_answer(question)
        self.generate("send", question.text)

    async def _start_answer(self, question: UserMessage | None = None) -> None:
        self.asking = question
        self.cancel.clear()
        self.pacer.restart(ui_cpu_budget(self.controller.compute_threads, os.cpu_count() or 1))
        self.answer = await self.query_one(Transcript).add_answer()
        self._set_busy(True)

    @work(thread=True, exclusive=True, group="generate")
    def generate(self, how: str, text: str | None = None) -> None:
        """Runs in a worker thread; talks to the UI only through messages."""
        from localllm.chat.session import ContextNotice, Grounded, Retracted, TurnDone
        from localllm.engine import Token
        from localllm.engine.base import Reasoning
        from localllm.errors import LocalLLMError

        session = self.controller.session
        try:
            if how == "send":
                events = session.send(text, self.cancel)
            elif how == "edit":
                events = session.edit_last(text, self.cancel)
            else:
                events = session.regenerate(self.cancel)
            batch = _TokenBatch(self.post_message, lambda: self.pacer.interval)
            for event in events:
                if isinstance(event, Token):
                    batch.add(event.text)
                    continue
                batch.flush()  # text first, so notices and the end arrive in order
                if isinstance(event, ContextNotice):
                    self.post_message(ContextNoticed(event.event.text))
                elif isinstance(event, Grounded):
                    self.post_message(ContextNoticed(event.text))
                elif isinstance(event, Reasoning):
                    self.post_message(ReasoningChunk(event.text))
                elif isinstance(event, Retracted):
                    self.post_message(AnswerRetracted(event.reason))
                elif isinstance(event, TurnDone):
                    self.post_message(AnswerFinished(event))
        except LocalLLMError as exc:
            self.post_message(GenerationFailed(str(exc)))
        except Exception as exc:  # the app must survive a failed turn (e.g. out of memory)
            self.post_message(GenerationFailed(f"{exc.__class__.__name__}: {exc}"))

    async def on_answer_chunk(self, message: AnswerChunk) -> None:
        self.pacer.drawn(time.thread_time(), time.monotonic())
        if self.answer is not None and not self.cancel.is_set():
            await self.answer.append_text(message.text)
            self.query_one(Transcript).follow()

    async def on_answer_retracted(self, message: AnswerRetracted) -> None:
        if self.answer is not None:
            await self.answer.replace("")
        self.notify(message.reason, severity="warning")

    async def on_context_noticed(self, message: ContextNoticed) -> None:
        transcript = self.query_one(Transcript)
        if self.answer is not None:
            await self.answer.remove()
        await transcript.add_notice(message.text)
        self.answer = await transcript.add_answer()

    async def on_reasoning_chunk(self, message: ReasoningChunk) -> None:
        """A thinking model's reasoning: shown dimmed above the answer as it comes."""
        transcript = self.query_one(Transcript)
        if self.reasoning is None:
            if self.answer is not None:
                await self.answer.remove()
            self.reasoning = await transcript.add_reasoning()
            self.answer = await transcript.add_answer()
        self.reasoning.add(message.text)
        transcript.follow()

    async def on_answer_finished(self, message: AnswerFinished) -> None:
        done = message.done
        if self.reasoning is not None:  # folded to one line once the answer is there
            self.reasoning.fold(done.stats.reasoning_tokens)
            self.reasoning = None
        if self.answer is not None:
            if done.withheld or self.answer.text != done.message.content:
                await self.answer.replace(done.message.content)
            await self.answer.finish(done.message.note)
        self.answer = None
        if note := sources_note(done.message.sources, done.given):
            await self.query_one(Transcript).add_notice(note)
        self._set_busy(False)
        self.refresh_status(done.stats.decode_tps)
        self.refresh_sidebar()
        await self.query_one(Transcript).trim()
        if self.queued:
            await self._send_queued()

    async def on_generation_failed(self, message: GenerationFailed) -> None:
        self.reasoning = None
        if self.answer is not None:
            await self.answer.remove()
            self.answer = None
        # The session took the question back (roles must alternate): it returns to the input,
        # with any queued behind it, so nothing typed is lost.
        returned = [self.asking] if self.asking is not None else []
        returned += self.queued
        self.asking, self.queued = None, []
        if returned:
            await self.query_one(Transcript).remove_children(returned)
            prompt = self.query_one(PromptInput)
            prompt.text = "\n\n".join([*(w.text for w in returned), prompt.text]).strip()
            prompt.move_cursor(prompt.document.end)
        self._set_busy(False)
        self.notify(message.error, title="could not answer", severity="error", timeout=10)

    # -- actions -----------------------------------------------------------------

    def action_stop(self) -> None:
        if self.busy:
            self.cancel.set()
            after = "; the queued message goes next" if self.queued else ""
            self.notify(f"stopped: the answer so far is kept{after}")

    async def action_regenerate(self) -> None:
        conv = self.controller.session.conv
        if self.busy or not conv.messages:
            return
        await self._remove_last_turn_widgets(include_user=False)
        await self._start_answer()
        self.generate("regenerate")

    async def _remove_last_turn_widgets(self, include_user: bool) -> None:
        transcript = self.query_one(Transcript)
        children = transcript.messages
        while children and isinstance(children[-1], AnswerMessage):
            await children.pop().remove()
        if include_user and children:
            await children.pop().remove()

    def action_edit_last(self) -> None:
        users = [m for m in self.controller.session.conv.messages if m.role == "user"]
        if self.busy or not users:
            return
        prompt = self.query_one(PromptInput)
        prompt.text = users[-1].content
        prompt.focus()
        self.editing = True
        self.notify("editing your last message: Enter resends it")

    def action_copy_last(self) -> None:
        answers = [m for m in self.controller.session.conv.messages if m.role == "assistant"]
        if not answers:
            return
        self.app.copy_to_clipboard(answers[-1].content)
        saved = self.controller.save_last_answer(answers[-1].content)
        self.notify(f"copied to the clipboard (if the terminal allows) and saved to {saved}")

    async def action_new_conversation(self) -> None:
        if self.busy:
            return
        self.controller.new_conversation()
        await self.show_conversation()

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one(Sidebar)
        sidebar.display = not sidebar.display

    async def on_sidebar_opened(self, message: Sidebar.Opened) -> None:
        if self.busy:
            self.notify("wait for the answer, or press Escape", severity="warning")
            return
        self.controller.open_conversation(message.conversation_id)
        await self.show_conversation()
        self.query_one(PromptInput).focus()
        if attached := self.controller.session.conv.attached:  # read again, off this thread
            self.app.attach_documents(attached)

    async def action_delete_conversation(self) -> None:
        sidebar = self.query_one(Sidebar)
        target = sidebar.highlighted_id
        if self.busy or target is None or not sidebar.has_focus:
            return
        self.controller.delete_conversation(target)
        await self.show_conversation()
        self.notify("conversation deleted")
