"""Model, backend, speed of the last answer, and how full the context window is."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static

WARN_AT = 0.85  # share of the window at which the meter turns to the warning colour


class StatusBar(Static):
    model = reactive("")
    backend = reactive("")
    tokens_per_second = reactive(0.0)
    used = reactive(0)
    window = reactive(0)
    busy = reactive(False)

    def render(self) -> str:
        share = self.used / self.window if self.window else 0.0
        self.set_class(share >= WARN_AT, "-warning")
        bar_width = 6
        filled = min(bar_width, round(share * bar_width))
        meter = "█" * filled + "░" * (bar_width - filled)
        speed = f"{self.tokens_per_second:.1f} tok/s" if self.tokens_per_second else "– tok/s"
        state = " │ answering…" if self.busy else ""
        return (
            f" {self.model} │ {self.backend} │ {speed} │ {meter} {self.used}/{self.window}{state}"
        )
