"""Stored conversations: pick one to open it."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
from textual.widgets import ListItem, ListView, Static


class ConversationItem(ListItem):
    def __init__(self, conversation_id: int, title: str):
        super().__init__(Static(title or "(untitled)", markup=False))
        self.conversation_id = conversation_id


class Sidebar(ListView):
    @dataclass
    class Opened(Message):
        conversation_id: int

    def show_conversations(self, rows: list[dict], current: int | None) -> None:
        self.clear()
        for row in rows:
            self.append(ConversationItem(row["id"], row["title"]))
        for index, row in enumerate(rows):
            if row["id"] == current:
                self.index = index

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, ConversationItem):
            self.post_message(self.Opened(event.item.conversation_id))

    @property
    def highlighted_id(self) -> int | None:
        item = self.highlighted_child
        return item.conversation_id if isinstance(item, ConversationItem) else None
