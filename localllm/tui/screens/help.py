"""F1 / ?: every key binding, in one place."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

KEYS = [
    ("Enter", "send the message"),
    ("Ctrl+J, Shift+Enter", "new line"),
    ("Escape", "stop the answer (keeps it)"),
    ("Ctrl+R", "regenerate the last answer"),
    ("Ctrl+E", "edit and resend the last message"),
    ("Ctrl+Y", "copy the last answer"),
    ("Ctrl+N", "new conversation"),
    ("Ctrl+B", "show or hide the chat list"),
    ("Delete", "delete the chat (in the list)"),
    ("F2", "choose or download a model"),
    ("F3", "system prompt and settings"),
    ("F4", "attach documents (an index or files): answers cite them"),
    ("Ctrl+P", "command palette"),
    ("F1 / ?", "this help"),
    ("Ctrl+Q", "quit"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="dialog"):
            yield Static("Keys", classes="dialog-title")
            table = DataTable(show_cursor=False, zebra_stripes=True)
            table.add_columns("Key", "Does")
            for key, what in KEYS:
                table.add_row(key, what)
            yield table
            yield Static("Escape closes this help.", classes="dialog-hint")

    def action_dismiss(self) -> None:
        self.dismiss(None)
