"""How core code reports long work without knowing who is watching.

The core calls a ProgressReporter; the CLI passes one that draws a rich bar
on stderr, the chat UI one that posts messages, tests the silent default.
"""

from __future__ import annotations

from typing import Protocol


class ProgressReporter(Protocol):
    def message(self, text: str) -> None:
        """A one-line notice the user should see (e.g. 'fetching the starter model')."""

    def start(self, description: str, total: int | None, unit: str = "B") -> None:
        """Begin a task of `total` units (None when unknown)."""

    def advance(self, amount: int) -> None: ...

    def describe(self, description: str) -> None:
        """Replace the running task's description (e.g. to show a rate)."""

    def finish(self) -> None: ...


class SilentProgress:
    """Reports nothing; the default for library callers and tests."""

    def message(self, text: str) -> None:
        pass

    def start(self, description: str, total: int | None, unit: str = "B") -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def describe(self, description: str) -> None:
        pass

    def finish(self) -> None:
        pass
