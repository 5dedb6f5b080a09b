"""F3: system prompt, temperature, reply length and context policy of this conversation."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea


@dataclass
class ChatSettings:
    system_prompt: str
    temperature: float
    max_tokens: int
    policy: str


class SettingsScreen(ModalScreen[ChatSettings | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: ChatSettings):
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        c = self.current
        with Vertical(id="settings-box", classes="dialog"):
            yield Static("Conversation settings", classes="dialog-title")
            yield Label("System prompt")
            yield TextArea(c.system_prompt, id="system-prompt")
            with Horizontal(classes="fields"):
                with Vertical():
                    yield Label("Temperature (0-2)")
                    yield Input(str(c.temperature), id="temperature", type="number")
                with Vertical():
                    yield Label("Max answer tokens")
                    yield Input(str(c.max_tokens), id="max-tokens", type="integer")
                with Vertical():
                    yield Label("When history outgrows the window")
                    yield Select(
                        [("fold into a summary", "summary"), ("drop old turns", "window"),
                         ("refuse", "off")],
                        value=c.policy, allow_blank=False, id="policy",
                    )  # fmt: skip
            with Horizontal(classes="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        try:
            temperature = float(self.query_one("#temperature", Input).value)
            max_tokens = int(self.query_one("#max-tokens", Input).value)
        except ValueError:
            self.notify("temperature and max tokens must be numbers", severity="error")
            return
        if not (0 <= temperature <= 2 and 1 <= max_tokens <= 32768):
            self.notify("temperature 0-2, max tokens 1-32768", severity="error")
            return
        self.dismiss(
            ChatSettings(
                self.query_one("#system-prompt", TextArea).text,
                temperature,
                max_tokens,
                str(self.query_one("#policy", Select).value),
            )
        )

    def action_cancel(self) -> None:
        self.dismiss(None)
