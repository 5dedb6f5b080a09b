"""The conversation as it scrolls by: user turns, streamed Markdown answers, quiet notices.

Only the newest WINDOW messages are widgets. Every redraw lays out every mounted
widget, so a conversation of hundreds of turns would make each streamed chunk
cost more and more; older messages wait above, behind a marker, and come back a
window at a time when the user scrolls to the top or clicks the marker.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Markdown, Static

WINDOW = 24  # message widgets kept mounted
SLACK = 8  # a long session trims only when it has this many more
QUEUED_NOTE = "\nqueued: sent when the answer ends"


@dataclass(frozen=True)
class Entry:
    """One message as the transcript shows it."""

    role: str  # "user", "assistant" or "notice"
    text: str
    note: str | None = None


class UserMessage(Static):
    def __init__(self, text: str):
        super().__init__(text, markup=False)
        self.text = text

    def set_queued(self, queued: bool) -> None:
        """Sent while an answer was coming: marked until that answer ends and it goes."""
        self.set_class(queued, "-queued")
        self.update(Content.assemble(self.text, (QUEUED_NOTE, "italic")) if queued else self.text)


class Notice(Static):
    """A context event (turns folded, a message cut) or other quiet information."""

    def __init__(self, text: str):
        super().__init__(text, markup=False)
        self.text = text


class ReasoningNote(Notice):
    """A thinking model's reasoning, dimmed: the tail of it while it streams, folded to one
    line once the answer is done (it is stored with the answer, never sent back)."""

    SHOWN = 400  # characters of the reasoning visible while it streams

    def __init__(self):
        super().__init__("thinking…")
        self.reasoning = ""

    def add(self, chunk: str) -> None:
        self.reasoning += chunk
        self._show(f"thinking… {' '.join(self.reasoning.split())[-self.SHOWN :]}")

    def fold(self, tokens: int) -> None:
        self._show(f"▸ reasoned for {tokens} tokens before answering")

    def _show(self, text: str) -> None:
        self.text = text  # what the transcript keeps of it when the widget is trimmed
        self.update(text)


class EarlierMessages(Static):
    """The marker above the shown messages: how many wait above, and how to see them."""

    def show_count(self, n: int) -> None:
        noun = "message" if n == 1 else "messages"
        self.update(f"▲ {n} earlier {noun}: scroll up or click to show them")

    async def on_click(self) -> None:
        await self.parent.show_earlier()


class AnswerMessage(Markdown):
    """An assistant answer; streams token by token through a MarkdownStream."""

    def __init__(self, text: str = "", note: str | None = None):
        super().__init__(text)
        self.text = text
        self.note = note
        self._stream = None
        if note:
            self.add_class(f"-{note}")
            self.border_subtitle = note

    async def append_text(self, chunk: str) -> None:
        self.text += chunk
        if self._stream is None:
            self._stream = Markdown.get_stream(self)
        await self._stream.write(chunk)

    async def finish(self, note: str | None = None) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        if note:
            self.note = note
            self.add_class(f"-{note}")
            self.border_subtitle = note

    async def replace(self, text: str) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self.text = text
        await self.update(text)


def _widget_for(entry: Entry):
    if entry.role == "user":
        return UserMessage(entry.text)
    if entry.role == "notice":
        return Notice(entry.text)
    return AnswerMessage(entry.text, entry.note)


def _entry_of(widget) -> Entry:
    if isinstance(widget, UserMessage):
        return Entry("user", widget.text)
    if isinstance(widget, Notice):
        return Entry("notice", widget.text)
    return Entry("assistant", widget.text, widget.note)


class Transcript(VerticalScroll):
    """Holds the message widgets; follows the newest text unless the user scrolled up."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden: list[Entry] = []  # oldest first

    @property
    def messages(self) -> list:
        return [w for w in self.children if not isinstance(w, EarlierMessages)]

    async def show(self, entries: list[Entry]) -> None:
        """Replace everything with these messages (the newest WINDOW of them as widgets)."""
        await self.remove_children()
        self.hidden = list(entries[:-WINDOW])
        await self.mount_all([_widget_for(e) for e in entries[-WINDOW:]])
        await self._update_marker()
        self.scroll_end(animate=False)

    async def trim(self) -> None:
        """Move the oldest widgets behind the marker once a session has grown past the window.

        Only while the view follows the newest text: never under a reader's eyes."""
        shown = self.messages
        if len(shown) <= WINDOW + SLACK or not self.at_end:
            return
        excess = shown[: len(shown) - WINDOW]
        self.hidden.extend(_entry_of(w) for w in excess)
        await self.remove_children(excess)
        await self._update_marker()

    async def show_earlier(self) -> None:
        """Bring back the previous window of messages, keeping the view where it was."""
        if not self.hidden:
            return
        batch, self.hidden = self.hidden[-WINDOW:], self.hidden[:-WINDOW]
        first = self.messages[0] if self.messages else None
        await self.mount_all([_widget_for(e) for e in batch], before=first)
        await self._update_marker()
        if first is not None:
            self._keep_in_view(first)

    def _keep_in_view(self, widget, tries: int = 10) -> None:
        """Scroll so widget stays at the top, once the layout has placed what came above it."""

        def place() -> None:
            if widget.virtual_region.y > 0 or tries <= 0:
                self.scroll_to_widget(widget, top=True, animate=False)
            else:
                self._keep_in_view(widget, tries - 1)

        self.call_after_refresh(place)

    async def _update_marker(self) -> None:
        markers = list(self.query_children(EarlierMessages))
        if not self.hidden:
            await self.remove_children(markers)
        elif markers:
            markers[0].show_count(len(self.hidden))
        else:
            marker = EarlierMessages()
            marker.show_count(len(self.hidden))
            first = self.children[0] if self.children else None
            await self.mount(marker, before=first)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value <= 0 < old_value and self.hidden:
            self.call_later(self.show_earlier)

    async def add_user(self, text: str, queued: bool = False) -> UserMessage:
        widget = UserMessage(text)
        if queued:
            widget.set_queued(True)
        await self._add(widget)
        return widget

    async def add_answer(self, text: str = "", note: str | None = None) -> AnswerMessage:
        widget = AnswerMessage(text, note)
        await self._add(widget)
        return widget

    async def add_reasoning(self) -> ReasoningNote:
        widget = ReasoningNote()
        await self._add(widget)
        return widget

    async def add_notice(self, text: str) -> None:
        await self._add(Notice(text))

    async def _add(self, widget) -> None:
        # Queued messages stay last: what belongs to the turn under way goes above them.
        queued = next(iter(self.query_children(".-queued")), None)
        before = None if widget.has_class("-queued") else queued
        await self.mount(widget, before=before)
        self.scroll_end(animate=False)

    @property
    def at_end(self) -> bool:
        return self.max_scroll_y - self.scroll_y < 3

    def follow(self) -> None:
        """Keep the newest text in view, unless the user has scrolled up to read."""
        if self.at_end:
            self.scroll_end(animate=False)
