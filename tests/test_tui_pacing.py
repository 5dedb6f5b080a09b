"""DrawPacer: redraws spaced so the UI keeps within its share of a core (clock values given)."""

from __future__ import annotations

from localllm.tui.pacing import (
    BUDGET_SHARED,
    BUDGET_SPARE,
    MAX_INTERVAL_S,
    MIN_INTERVAL_S,
    DrawPacer,
    ui_cpu_budget,
)


def feed(pacer: DrawPacer, cost_s: float, rounds: int = 20) -> float:
    """Chunks arrive at the pacer's own interval; each redraw costs cost_s of UI CPU."""
    cpu = wall = 0.0
    pacer.drawn(cpu, wall)
    for _ in range(rounds):
        cpu += cost_s
        wall += pacer.interval
        pacer.drawn(cpu, wall)
    return pacer.interval


def test_cheap_redraws_stay_at_the_smooth_minimum():
    assert feed(DrawPacer(BUDGET_SHARED), cost_s=0.0005) == MIN_INTERVAL_S


def test_costly_redraws_are_spaced_to_keep_within_the_budget():
    budget = 0.05
    interval = feed(DrawPacer(budget), cost_s=0.02)
    assert abs(interval - 0.02 / budget) < 0.01  # 0.4 s: the UI spends 5 % of a core


def test_the_interval_never_exceeds_the_maximum():
    assert feed(DrawPacer(BUDGET_SHARED), cost_s=0.5) == MAX_INTERVAL_S


def test_a_new_answer_does_not_count_the_pause_between_answers():
    pacer = DrawPacer(0.05)
    feed(pacer, cost_s=0.02)
    learnt = pacer.interval
    pacer.restart(0.05)
    pacer.drawn(100.0, 1000.0)  # the first chunk of the next answer, long after
    assert pacer.interval == learnt
    pacer.restart(0.5)  # another model, on a GPU: a roomier budget
    assert feed(pacer, cost_s=0.02) == MIN_INTERVAL_S


def test_the_budget_is_tight_only_when_llama_cpp_takes_every_cpu():
    assert ui_cpu_budget(compute_threads=2, cpus=2) == BUDGET_SHARED
    assert ui_cpu_budget(compute_threads=8, cpus=16) == BUDGET_SPARE
    assert BUDGET_SHARED < BUDGET_SPARE
