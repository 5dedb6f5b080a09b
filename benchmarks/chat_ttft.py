"""Time to first token per turn over a 40-turn chat: localllm's manager vs a naive baseline.

localllm: one ChatSession (summary policy, block eviction, KV-cache prefix reuse).
Baseline: each turn re-renders the whole history (oldest turns dropped only when
they no longer fit) and resets the KV cache, as tools without prefix reuse do.
Both run on the same loaded model in this process; the baseline replays the same
messages the managed run produced, so both prefill identical histories. TTFT is
wall time from sending the message to the first token (folds included).
Prints one JSON line per turn, then a summary line.

    python benchmarks/chat_ttft.py [--ctx 4096] [--turns 40] [--answer-tokens 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from localllm.chat.conversation import ChatParams, Conversation
from localllm.chat.session import ChatSession, ContextNotice
from localllm.config import Settings
from localllm.engine import LoadOptions, SamplingParams, Token
from localllm.engine.llama import load_engine
from localllm.store.resolve import resolve_model

TOPICS = ["lighthouses", "volcanoes", "honeybees", "glaciers", "the printing press", "tea",
          "coral reefs", "bicycles", "the Moon", "chess"]  # fmt: skip
ASKS = ["Write a paragraph about {}.", "Tell me a surprising fact about {}.",
        "Explain how {} affect people's lives.", "Describe {} to a child."]  # fmt: skip


def managed_turn(session: ChatSession, text: str) -> tuple[float, bool, object]:
    started = time.perf_counter()
    first, folded, done = None, False, None
    for event in session.send(text):
        if isinstance(event, ContextNotice) and event.event.kind in ("folded", "dropped"):
            folded = True
        elif isinstance(event, Token) and first is None:
            first = time.perf_counter() - started
        done = event
    return first or 0.0, folded, done


def baseline_turn(engine, messages: list[dict], budget: int) -> float:
    """Full re-render, oldest turns dropped until it fits, cache reset, one token."""
    started = time.perf_counter()
    while True:
        tokens = engine.chat_tokens(messages)
        if len(tokens) <= budget or len(messages) <= 1:
            break
        messages = messages[2:]
    engine.reset()
    for event in engine.stream(tokens, SamplingParams(max_tokens=1, temperature=0.0)):
        if isinstance(event, Token):
            break
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--answer-tokens", type=int, default=100)
    args = parser.parse_args()
    model = resolve_model(Settings.from_env(), args.model)
    engine = load_engine(model.path, LoadOptions(n_ctx=args.ctx))
    conv = Conversation(model=model.name, params=ChatParams(temperature=0.0,
                        max_tokens=args.answer_tokens, policy="summary"))  # fmt: skip
    session = ChatSession(engine, conv)
    budget = engine.n_ctx - args.answer_tokens
    rows, histories = [], []
    for i in range(args.turns):
        text = ASKS[i % len(ASKS)].format(TOPICS[i // len(ASKS) % len(TOPICS)])
        ttft, folded, done = managed_turn(session, text)
        histories.append([{"role": m.role, "content": m.content} for m in conv.messages[:-1]])
        rows.append({
            "turn": i + 1, "history_tokens": len(engine.chat_tokens(histories[-1])),
            "prompt_tokens": done.prompt_tokens, "cached_tokens": done.stats.cached_tokens,
            "answer_tokens": done.stats.completion_tokens, "folded": folded,
            "localllm_ttft_s": round(ttft, 3),
        })  # fmt: skip
    # The baseline replays the same histories afterwards: run between managed turns, its
    # cache resets would also wipe the managed session's cache.
    for row, history in zip(rows, histories, strict=True):
        row["baseline_ttft_s"] = round(baseline_turn(engine, history, budget), 3)
        print(json.dumps(row), flush=True)
    early = statistics.median(r["localllm_ttft_s"] for r in rows[1:5])
    late = statistics.median(r["localllm_ttft_s"] for r in rows[30:40])
    long_rows = [r for r in rows if r["history_tokens"] > 2000]
    speedups = [r["baseline_ttft_s"] / r["localllm_ttft_s"] for r in long_rows]
    print(json.dumps({
        "bench": "chat_ttft", "model": model.name, "ctx": engine.n_ctx, "turns": args.turns,
        "folds": sum(r["folded"] for r in rows),
        "median_ttft_turns_2_5_s": round(early, 3), "median_ttft_turns_31_40_s": round(late, 3),
        "late_over_early": round(late / early, 2),
        "turns_over_2000_history_tokens": len(long_rows),
        "median_speedup_vs_baseline_over_2000": round(statistics.median(speedups), 2)
        if speedups else None,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
