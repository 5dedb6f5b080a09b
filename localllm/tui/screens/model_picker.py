"""F2: choose a local model, or download one from the catalogue with a progress bar."""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, ProgressBar, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker


@dataclass(frozen=True)
class ModelChoice:
    name: str  # what resolve_model accepts
    label: str
    local: bool


class _PullStopped(BaseException):
    """Ends a download whose picker has closed. A BaseException, like KeyboardInterrupt, so
    the download's retry loop lets it through; the partial file stays and resumes next time."""


class ModelPicker(ModalScreen[str | None]):
    """Dismisses with the chosen model's name once it is on disk (after a pull if needed)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, choices: list[ModelChoice], pull=None):
        super().__init__()
        self.choices = choices
        self.pull = pull  # callable(name, progress) -> None, run in a worker thread

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box", classes="dialog"):
            yield Static("Models", classes="dialog-title")
            options = []
            for i, c in enumerate(self.choices):
                options.append(Option(c.label, id=str(i)))
            yield OptionList(*options, id="models")
            yield ProgressBar(id="pull-progress", show_eta=True)
            yield Static("Enter: use · ↓ marks models to download · Escape: close",
                         classes="dialog-hint")  # fmt: skip

    def on_mount(self) -> None:
        self.query_one("#pull-progress").display = False
        self.query_one("#models").focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        choice = self.choices[int(event.option.id)]
        if choice.local or self.pull is None:
            self.dismiss(choice.name)
        else:
            self.query_one("#pull-progress").display = True
            self._pull(choice.name)

    @work(thread=True, exclusive=True)
    def _pull(self, name: str) -> None:
        bar = self.query_one("#pull-progress", ProgressBar)
        app = self.app
        # Cancelled when the picker closes (Escape, or the app quits, whose exit waits for
        # this thread): the download stops at its next chunk.
        worker = get_current_worker()

        class BarProgress:
            bars = False

            def message(self, text):
                app.call_from_thread(app.notify, text)

            def start(self, description, total, unit="B"):
                app.call_from_thread(bar.update, total=total, progress=0)

            def advance(self, amount):
                if worker.is_cancelled:
                    raise _PullStopped
                app.call_from_thread(bar.advance, amount)

            def describe(self, description):
                pass

            def finish(self):
                pass

        try:
            self.pull(name, BarProgress())
        except _PullStopped:
            return
        except Exception as exc:  # shown to the user; the picker stays open
            if not worker.is_cancelled:
                app.call_from_thread(app.notify, str(exc), severity="error", timeout=10)
            return
        if not worker.is_cancelled:
            app.call_from_thread(self._pulled, name)

    def _pulled(self, name: str) -> None:
        # Only while the picker is on top: dismissing a picker already closed would pop the
        # chat screen instead.
        if self.is_active:
            self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)
