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


async def _type(app, pilot, prompt, keys: str) -> list[float]:
    latencies = []
    start_len = len(prompt.text)
    for i, key in enumerate(keys):
        await asyncio.sleep(0.02)  # a typing pace
        started = time.perf_counter()
        await pilot.press("space" if key == " " else key)
        while len(prompt.text) < start_len + i + 1:
            await asyncio.sleep(0.0005)
        latencies.append(time.perf_counter() - started)
    return latencies


async def measure(app, controller) -> tuple[list[float], list[float], float]:
    """Key latencies while idle (the harness's own cost) and while streaming."""
    async with app.run_test(size=(100, 30)) as pilot:
        prompt = app.screen.query_one(PromptInput)
        idle = await _type(app, pilot, prompt, KEYS[:20])
        prompt.clear()
        prompt.insert("Write a very long story about a lighthouse keeper and the sea.")
        await pilot.press("enter")
        await pilot.pause(0.5)  # the answer is streaming now
        busy = await _type(app, pilot, prompt, KEYS)
        still_streaming = controller.session.conv.messages[-1].role == "user"
        await app.workers.wait_for_complete()
        last = controller.session.conv.messages[-1]
    if not still_streaming:
        print(f"warning: the answer ({last.completion_tokens} tokens) ended before the typing did")
    return idle, busy, last.decode_tps or 0.0


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
        idle, busy, ui_tps = asyncio.run(measure(make_app(controller), controller))
        bare_after = bare_round(engine, bench_prompt(engine, 64), 200).decode_tps
    bare = (bare_before + bare_after) / 2
    busy.sort()
    print(json.dumps({
        "bench": "tui_key_latency", "presses": len(busy),
        "median_ms_while_streaming": round(statistics.median(busy) * 1000, 1),
        "p95_ms_while_streaming": round(busy[int(len(busy) * 0.95) - 1] * 1000, 1),
        "median_ms_idle": round(statistics.median(idle) * 1000, 1),
    }))  # fmt: skip
    print(json.dumps({
        "bench": "tui_decode", "ui_decode_tps": round(ui_tps, 2), "bare_decode_tps": round(bare, 2),
        "ratio": round(ui_tps / bare, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
