"""Stored conversations: pick one to open it.

An OptionList draws its rows itself, one widget however many conversations
there are; a ListView has a widget per row, and the whole screen's layout
(redone on every streamed redraw) grew with the number of stored chats.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option


class Sidebar(OptionList):
    @dataclass
    class Opened(Message):
        conversation_id: int

    def show_conversations(self, rows: list[dict], current: int | None) -> None:
        self.clear_options()
        self.add_options(
            Option(Content(row["title"] or "(untitled)"), id=str(row["id"])) for row in rows
        )
        ids = [row["id"] for row in rows]
        self.highlighted = ids.index(current) if current in ids else None

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.post_message(self.Opened(int(event.option.id)))

    @property
    def highlighted_id(self) -> int | None:
        option = self.highlighted_option
        return int(option.id) if option is not None else None
