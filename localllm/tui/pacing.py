"""How often a streaming answer is redrawn: as often as the machine can afford.

Every redraw (Markdown, layout, compositor) runs on the UI thread. When llama.cpp
already keeps every core busy, that CPU comes out of its threads, and because they
meet at a barrier after each step, a thread that loses its core holds all of them
up. So the UI keeps its own share of a core under a budget: it measures the CPU
time it spent between two redraws and spaces the next ones so that cost/interval
stays within the budget, never faster than MIN_INTERVAL_S (smooth enough to read
along) and never slower than MAX_INTERVAL_S (the answer must not look stuck).
Cheap redraws on a fast machine stay at the minimum; a long transcript with code
on a two-core laptop gets fewer, larger steps instead of a slower model.
"""

from __future__ import annotations

MIN_INTERVAL_S = 0.1
MAX_INTERVAL_S = 1.0
BUDGET_SHARED = 0.015  # of one core, when llama.cpp's threads take every CPU
BUDGET_SPARE = 0.25  # when a CPU is left over for the UI
SMOOTHING = 0.5  # weight of the newest measurement: redraw costs vary with the text


def ui_cpu_budget(compute_threads: int, cpus: int) -> float:
    """The share of one core the UI may spend redrawing while the model computes."""
    return BUDGET_SHARED if cpus <= compute_threads else BUDGET_SPARE


class DrawPacer:
    """Chooses the interval between redraws from what the last ones cost.

    Lives on the UI thread (`drawn` is called there); the generation worker only
    reads `interval`, a float, which is safe to read from another thread.
    """

    def __init__(self, budget: float = BUDGET_SHARED):
        self.budget = budget
        self.interval = MIN_INTERVAL_S
        self._last: tuple[float, float] | None = None  # (UI CPU seconds, wall seconds)

    def restart(self, budget: float) -> None:
        """A new answer (perhaps from another model): the time since the last one is not
        redraw cost. The interval learnt so far is kept: the transcript is much the same."""
        self.budget = budget
        self._last = None

    def drawn(self, ui_cpu_s: float, wall_s: float) -> None:
        """Called as each chunk arrives, with the UI thread's CPU clock and a wall clock."""
        if self._last is not None:
            spent = ui_cpu_s - self._last[0]
            elapsed = wall_s - self._last[1]
            if elapsed > 0:
                wanted = spent / self.budget
                smoothed = SMOOTHING * wanted + (1 - SMOOTHING) * self.interval
                self.interval = min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, smoothed))
        self._last = (ui_cpu_s, wall_s)
