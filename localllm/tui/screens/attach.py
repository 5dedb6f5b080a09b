"""F4: attach documents to the conversation (an index, or files and folders)."""

from __future__ import annotations

import shlex

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class AttachScreen(ModalScreen[str | None]):
    """Asks what to attach; dismisses with it ("" detaches), or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str):
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="attach-box", classes="dialog"):
            yield Static("Attach documents", classes="dialog-title")
            yield Static("An index name (localllm index list), or files and folders separated "
                         "by spaces (quote a path that has spaces). Empty detaches.",
                         classes="dialog-hint")  # fmt: skip
            shown = shlex.join(s for s in self.current.split("\n") if s)
            yield Input(shown, id="attach-sources",
                        placeholder="default  or  ~/notas informe.pdf")  # fmt: skip
            yield Static("Enter attaches, Escape cancels.", classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
