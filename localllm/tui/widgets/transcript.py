"""The conversation as it scrolls by: user turns, streamed Markdown answers, quiet notices."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static


class UserMessage(Static):
    pass


class Notice(Static):
    """A context event (turns folded, a message cut) or other quiet information."""


class AnswerMessage(Markdown):
    """An assistant answer; streams token by token through a MarkdownStream."""

    def __init__(self, text: str = "", note: str | None = None):
        super().__init__(text)
        self.text = text
        self._stream = None
        if note:
            self.add_class(f"-{note}")

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
            self.add_class(f"-{note}")
            self.border_subtitle = note

    async def replace(self, text: str) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self.text = text
        await self.update(text)


class Transcript(VerticalScroll):
    """Holds the message widgets; follows the newest text unless the user scrolled up."""

    async def add_user(self, text: str) -> UserMessage:
        widget = UserMessage(text, markup=False)
        await self.mount(widget)
        self.scroll_end(animate=False)
        return widget

    async def add_answer(self, text: str = "", note: str | None = None) -> AnswerMessage:
        widget = AnswerMessage(text, note)
        await self.mount(widget)
        self.scroll_end(animate=False)
        return widget

    async def add_notice(self, text: str) -> None:
        await self.mount(Notice(text, markup=False))
        self.scroll_end(animate=False)

    def follow(self) -> None:
        if self.is_vertical_scroll_end or self.max_scroll_y - self.scroll_y < 3:
            self.scroll_end(animate=False)
