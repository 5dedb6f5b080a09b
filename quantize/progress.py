"""How conversion reports progress without knowing who is watching.

The method names match localllm's ProgressReporter, so the command line passes
its terminal bar straight in; library callers get silence by default.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def message(self, text: str) -> None: ...

    def start(self, description: str, total: int | None, unit: str = "B") -> None: ...

    def advance(self, amount: int) -> None: ...

    def describe(self, description: str) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
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
