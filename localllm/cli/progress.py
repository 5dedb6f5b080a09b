"""Progress on stderr for the command line: rich bars on a terminal, plain notices otherwise."""

from __future__ import annotations

import sys


class TerminalProgress:
    """A ProgressReporter that draws on stderr; bars only when stderr is a terminal."""

    def __init__(self, quiet: bool = False):
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.quiet = quiet
        self.bars = not quiet and sys.stderr.isatty()
        self._progress = None
        self._task = None

    def message(self, text: str) -> None:
        if not self.quiet:
            from rich.markup import escape

            # Notices quote files, names and model output: `[draft]` is text, not markup.
            self.console.print(f"[dim]localllm:[/dim] {escape(text)}", soft_wrap=True)

    def start(self, description: str, total: int | None, unit: str = "B") -> None:
        if not self.bars:
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        amount = (
            (DownloadColumn(), TransferSpeedColumn()) if unit == "B" else (MofNCompleteColumn(),)
        )
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), *amount, TimeRemainingColumn(),
            console=self.console, transient=True,
        )  # fmt: skip
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, amount)

    def describe(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=description)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
