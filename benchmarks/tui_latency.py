"""The chat app while an answer streams: key-press latency and decode speed.

Runs the real app headless (Textual's pilot) on the starter model.

Key latency: while a long answer streams at full speed, characters are typed
into the message box and the time from each key press to the character being
in the input is recorded (median and p95). Keys are sent two ways: posted to
the app as the terminal driver does ("direct", the app's own latency) and
through `pilot.press`, which also waits for the app to go idle (its floor,
measured with no answer streaming, is the harness's cost, not the app's).

Decode speed: rounds alternate the app streaming a greedy answer and
llama.cpp's bare C loop (`localllm bench`'s) decoding the same number of
tokens from the same chat prompt; the median of the paired ratios is reported.
As in `localllm chat`, the model runs in a child process (engine/process.py);
the bare loop runs there too, on the thread that serves the app's requests,
so both sides decode with the same llama.cpp threads.

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
from localllm.engine.bench import bare_round
from localllm.engine.process import ProcessEngine
from localllm.store.resolve import resolve_model
from localllm.tui.app import make_app
from localllm.tui.controller import ChatController
from localllm.tui.widgets.prompt_input import PromptInput

STORY = "Write a very long story about a lighthouse keeper and the sea."
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
        prompt.insert(STORY)
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


async def _stream_in_app(app) -> float:
    """Stream one answer; returns the redraw interval the pacer settled on."""
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.query_one(PromptInput).insert(STORY)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        return app.chat.pacer.interval


def decode_rounds(engine, model_name: str, rounds: int, n_tokens: int):
    """(UI decode tok/s, bare decode tok/s) pairs, alternating which side runs first, and
    the redraw interval the app settled on in each round.

    Both sides decode greedily from the same chat prompt for the same number of tokens
    (the UI's answer length), so the ratio isolates what the app costs the model.
    """
    pairs, intervals = [], []
    prompt = engine.chat_tokens([{"role": "user", "content": STORY}])
    for i in range(rounds):
        with tempfile.TemporaryDirectory() as scratch:
            controller = ChatController(
                engine, model_name, History(Path(scratch) / "h.sqlite3"),
                defaults=ChatParams(temperature=0.0, max_tokens=n_tokens),
            )  # fmt: skip
            if i % 2:
                bare_first = engine.apply(bare_round, prompt, n_tokens).decode_tps
            intervals.append(asyncio.run(_stream_in_app(make_app(controller))))
            answer = controller.session.conv.messages[-1]
            bare = engine.apply(bare_round, prompt, answer.completion_tokens).decode_tps
            if i % 2:
                bare = (bare + bare_first) / 2
        pairs.append((answer.decode_tps or 0.0, bare))
    return pairs, intervals


def main() -> None:
    settings = Settings.from_env()
    model = resolve_model(settings, sys.argv[1] if len(sys.argv) > 1 else None)
    engine = ProcessEngine(model.path)  # as `localllm chat` runs it: the model in a child process
    with tempfile.TemporaryDirectory() as scratch:
        controller = ChatController(
            engine, model.name, History(Path(scratch) / "h.sqlite3"),
            defaults=ChatParams(temperature=0.8, max_tokens=1000, seed=1),
        )  # fmt: skip
        runs, _ = asyncio.run(measure(make_app(controller), controller))
    for name, latencies in runs.items():
        print(json.dumps({"bench": "tui_key_latency", "case": name, **_summary(latencies)}))
    pairs, intervals = decode_rounds(engine, model.name, rounds=8, n_tokens=300)
    ratios = [ui / bare for ui, bare in pairs]
    print(json.dumps({
        "bench": "tui_decode", "rounds": len(pairs),
        "ui_decode_tps": [round(ui, 1) for ui, _ in pairs],
        "bare_decode_tps": [round(bare, 1) for _, bare in pairs],
        "median_ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "redraw_interval_s": [round(i, 2) for i in intervals],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
