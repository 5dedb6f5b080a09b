"""The watermark's power, false positives, quality cost and speed cost, in one run.

- Detection: the median z over N watermarked answers (default 50) when only their
  first 25, 50, 100 and 200 scored tokens are kept.
- False positives: the share of >= 500 human passages (the standard library's
  docstrings cut into ~200-token passages, and the Spanish test passages) at or
  above z = 4 (target <= 0.1 %), with the largest z seen.
- Quality: perplexity of watermarked and of unmarked answers under the unmarked
  model (the same prompts and seeds), and their ratio.
- Speed: decode tokens/s with and without the watermark, alternating in the same
  run (target ratio >= 0.97), and the bias's own time per token (timed around each
  call) as a share of an unmarked decode step: the same cost without the run-to-run
  noise of whole generations.

    python benchmarks/watermark.py [MODEL] [--answers 50] [--speed-rounds 6]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import pkgutil
import statistics
import time
from pathlib import Path

from localllm.config import Settings
from localllm.engine import Finished, LoadOptions, SamplingParams, Token
from localllm.engine.llama import load_engine
from localllm.engine.watermark import Watermark, WatermarkSpec, score
from localllm.store.resolve import resolve_model
from localllm.watermarking import THRESHOLD_Z, detect, normalise

SPEC = WatermarkSpec(b"benchmark key, long enough to be a key")
TOPICS = ["a dragon", "the sea", "bread", "bicycles", "the moon", "a library", "winter",
          "a market", "trains", "gardens"]  # fmt: skip
STYLES = ["Write a long story about {}.", "Explain everything you know about {}.",
          "Describe {} in detail.", "Write an essay about {}.",
          "Tell a tale about {}."]  # fmt: skip
IMPORT_SIDE_EFFECTS = {"this", "antigravity"}  # print the Zen of Python; open a web browser
SPANISH = Path(__file__).parent.parent / "tests" / "data" / "pasajes_es.txt"


def prompts(n: int) -> list[str]:
    return [STYLES[i % len(STYLES)].format(TOPICS[(i // len(STYLES)) % len(TOPICS)])
            for i in range(n)]  # fmt: skip


def generate(engine, prompt: str, mark, seed: int, max_tokens: int = 320):
    tokens = engine.chat_tokens([{"role": "user", "content": prompt}])
    params = SamplingParams(max_tokens=max_tokens, temperature=0.7, seed=seed, watermark=mark)
    text, stats = "", None
    for event in engine.stream(tokens, params):
        if isinstance(event, Token):
            text += event.text
        elif isinstance(event, Finished):
            stats = event.stats
    return tokens, text, stats


def z_at(engine, text: str, lengths: list[int]) -> dict[int, float | None]:
    """z over the shortest start of the text that has n scored tokens (None: too short)."""
    ids = engine.tokenize(normalise(text), special=False, add_bos=False)
    out = {}
    for n in lengths:
        out[n] = None
        for end in range(n + SPEC.context, len(ids) + 1):
            result = score(SPEC, engine._n_vocab, ids[:end])
            if result.tokens >= n:
                out[n] = result.z
                break
    return out


def human_passages(engine, want: int) -> list[str]:
    docs = []
    for info in pkgutil.iter_modules():
        if len(docs) > 4 * want or info.name.startswith("_") or not info.module_finder:
            continue
        if info.name in IMPORT_SIDE_EFFECTS:
            continue
        if "site-packages" in str(getattr(info.module_finder, "path", "")):
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:  # some stdlib modules need a display, a platform, a C library
            continue
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj) if not isinstance(obj, str | int | float) else None
            if doc and len(doc.split()) >= 60:
                docs.append(doc)
    passages = []
    for doc in dict.fromkeys(docs):
        ids = engine.tokenize(doc, special=False, add_bos=False)
        for i in range(0, len(ids), 200):
            if len(ids[i : i + 200]) >= 80:
                passages.append(engine.detokenize(ids[i : i + 200]))
    spanish = [p for p in SPANISH.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    return passages[: max(want, 500)] + spanish


def timed(cls, name: str) -> dict:
    """Time every call of cls.name from now on (the bias's own cost, without run-to-run noise)."""
    original, totals = getattr(cls, name), {"seconds": 0.0, "calls": 0}

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals["seconds"] += time.perf_counter() - started
            totals["calls"] += 1

    setattr(cls, name, wrapper)
    return totals


def perplexity(engine, prompt_tokens: list[int], text: str) -> float:
    answer = engine.tokenize(text, special=False, add_bos=False)
    return math.exp(-engine.score(prompt_tokens, answer) / max(1, len(answer)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--answers", type=int, default=50)
    parser.add_argument("--speed-rounds", type=int, default=6)
    args = parser.parse_args()
    model = resolve_model(Settings.from_env(), args.model)
    engine = load_engine(model.path, LoadOptions(n_ctx=2048))
    lengths = [25, 50, 100, 200]
    started = time.perf_counter()
    by_length: dict[int, list[float]] = {n: [] for n in lengths}
    ppl_marked, ppl_plain = [], []
    for i, prompt in enumerate(prompts(args.answers)):
        tokens, marked, _ = generate(engine, prompt, SPEC, i)
        for n, value in z_at(engine, marked, lengths).items():
            if value is not None:
                by_length[n].append(value)
        if i < 20:  # the quality cost, on the same prompts and seeds
            _, plain, _ = generate(engine, prompt, None, i)
            ppl_marked.append(perplexity(engine, tokens, marked))
            ppl_plain.append(perplexity(engine, tokens, plain))
    human = human_passages(engine, 500)
    human_z = [detect(SPEC, engine, "bench", p).z for p in human]
    speed = {"marked": [], "plain": []}
    biasing = timed(Watermark, "bias")
    for r in range(args.speed_rounds):
        order = [("plain", None), ("marked", SPEC)]
        for name, mark in order if r % 2 == 0 else order[::-1]:  # alternate who goes first
            _, _, stats = generate(engine, "Write a very long story.", mark, 100 + r, 256)
            speed[name].append(stats.decode_tps)
    engine.close()
    marked_tps, plain_tps = statistics.median(speed["marked"]), statistics.median(speed["plain"])
    bias_us = biasing["seconds"] / max(1, biasing["calls"]) * 1e6
    report = {
        "bench": "watermark", "model": model.name, "gamma": SPEC.gamma, "delta": SPEC.delta,
        "context": SPEC.context,
        "median_z_by_scored_tokens": {n: round(statistics.median(v), 2) if v else None
                                      for n, v in by_length.items()},
        "answers_long_enough": {n: len(v) for n, v in by_length.items()},
        "human_passages": len(human),
        "false_positive_rate_at_z4": round(sum(z >= THRESHOLD_Z for z in human_z) / len(human), 5),
        "human_z_mean": round(statistics.mean(human_z), 3),
        "human_z_max": round(max(human_z), 2),
        "perplexity_marked": round(statistics.median(ppl_marked), 2),
        "perplexity_unmarked": round(statistics.median(ppl_plain), 2),
        "perplexity_ratio": round(statistics.median(ppl_marked) / statistics.median(ppl_plain), 3),
        "decode_tps_marked": round(marked_tps, 1), "decode_tps_unmarked": round(plain_tps, 1),
        "decode_ratio": round(marked_tps / plain_tps, 3),
        "bias_us_per_token": round(bias_us, 1),
        "bias_share_of_unmarked_step": round(bias_us * 1e-6 * plain_tps, 4),
        "wall_s": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
