"""The chat app while an answer streams: key-press latency and decode speed.

Runs the real app headless (Textual's pilot) on the starter model. While a long
answer streams at full speed, 50 characters are typed into the message box and
the time from each key press to the character being in the input is recorded
(median and p95 reported). The answer's decode tokens/s is then compared with
the bare llama_cpp loop on the same engine in the same run.

    python benchmarks/tui_latency.py [MODEL]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from textual import events

from localllm.chat.conversation import ChatParams
from localllm.chat.history import History
from localllm.config import Settings
from localllm.engine.bench import bare_round, bench_prompt
from localllm.engine.llama import load_engine
from localllm.store.resolve import resolve_model
from localllm.tui.app import make_app
from localllm.tui.controller import ChatController
from localllm.tui.widgets.prompt_input import PromptInput

KEYS = "the quick brown fox jumps over the lazy dog again!"[:50]


async def _type(app, pilot, prompt, keys: str, direct: bool) -> list[float]:
    """Seconds from each key press until its character is in the input box.

    direct=False presses through the pilot, which also waits for the app to go idle
    (its own cost is part of the figure); direct=True posts the key event to the app as
    a terminal driver does and polls the input, measuring the app alone.
    """
    latencies = []
    start_len = len(prompt.text)
    for i, key in enumerate(keys):
        await asyncio.sleep(0.02)  # a typing pace
        name = "space" if key == " " else key
        started = time.perf_counter()
        if direct:
            app.post_message(events.Key(name, key))
        else:
            await pilot.press(name)
        while len(prompt.text) < start_len + i + 1:
            await asyncio.sleep(0.0005)
        latencies.append(time.perf_counter() - started)
    return latencies


async def measure(app, controller) -> tuple[dict[str, list[float]], float]:
    """Key latencies idle and while streaming, pressed directly and through the pilot."""
    runs: dict[str, list[float]] = {}
    async with app.run_test(size=(100, 30)) as pilot:
        prompt = app.screen.query_one(PromptInput)
        runs["idle_direct"] = await _type(app, pilot, prompt, KEYS[:20], direct=True)
        runs["idle_pilot"] = await _type(app, pilot, prompt, KEYS[:20], direct=False)
        prompt.clear()
        prompt.insert("Write a very long story about a lighthouse keeper and the sea.")
        await pilot.press("enter")
        await pilot.pause(0.5)  # the answer is streaming now
        runs["streaming_direct"] = await _type(app, pilot, prompt, KEYS, direct=True)
        runs["streaming_pilot"] = await _type(app, pilot, prompt, KEYS[:20], direct=False)
        still_streaming = controller.session.conv.messages[-1].role == "user"
        await app.workers.wait_for_complete()
        last = controller.session.conv.messages[-1]
    if not still_streaming:
        print(f"warning: the answer ({last.completion_tokens} tokens) ended before the typing did")
    return runs, last.decode_tps or 0.0


def _summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "presses": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
    }


def main() -> None:
    settings = Settings.from_env()
    model = resolve_model(settings, sys.argv[1] if len(sys.argv) > 1 else None)
    engine = load_engine(model.path)
    with tempfile.TemporaryDirectory() as scratch:
        controller = ChatController(
            engine, model.name, History(Path(scratch) / "h.sqlite3"),
            defaults=ChatParams(temperature=0.8, max_tokens=1000, seed=1),
        )  # fmt: skip
        bare_before = bare_round(engine, bench_prompt(engine, 64), 200).decode_tps
        runs, ui_tps = asyncio.run(measure(make_app(controller), controller))
        bare_after = bare_round(engine, bench_prompt(engine, 64), 200).decode_tps
    bare = (bare_before + bare_after) / 2
    for name, latencies in runs.items():
        print(json.dumps({"bench": "tui_key_latency", "case": name, **_summary(latencies)}))
    print(json.dumps({
        "bench": "tui_decode", "ui_decode_tps": round(ui_tps, 2), "bare_decode_tps": round(bare, 2),
        "ratio": round(ui_tps / bare, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
