"""How long a summary's parts should be, from the engine's measured speed, not the window.

Filling the window is the slow choice for small models: a token's attention
grows with the prompt before it, and at a few thousand tokens it costs a
small model as much as its weights (SmolLM2-135M prefills 273 tok/s at 512
tokens but 124 tok/s over an 8k prompt). Shorter parts read faster, but each
one costs a summary written at decode speed and read again when merging. For
a part of c tokens the time per document token is

    (1 + c / 2P) / prefill  +  s (1/decode + 1/prefill) / c

where P = parameters / (2 · layers · width) is the depth at which a token's
attention costs as much as its matrix products, and s the summary tokens a
part gets. It is least at c = sqrt(2 P s (prefill/decode + 1)), kept between
512 tokens and the window.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from localllm.engine import Finished, SamplingParams

PROBE_PROMPT_TOKENS = 512
PROBE_DECODE_TOKENS = 32
MIN_PART_TOKENS = 512


@dataclass(frozen=True)
class EngineSpeed:
    prefill_tps: float  # over a short prompt (512 tokens): no long-context slowdown yet
    decode_tps: float


def attention_half_depth(info) -> float | None:
    """P: the prompt depth at which attention costs a token as much as its weights."""
    layers = info.block_count
    width = info.get(f"{info.architecture}.embedding_length")
    params = info.parameter_count
    if not layers or not width or not params:
        return None
    return params / (2 * layers * int(width))


def part_tokens(most: int, info, speed: EngineSpeed | None, summary_tokens: int) -> int:
    """The part length (tokens) that summarizes a long document soonest, at most `most`."""
    depth = attention_half_depth(info)
    if depth is None or speed is None or speed.decode_tps <= 0 or speed.prefill_tps <= 0:
        return most
    ratio = speed.prefill_tps / speed.decode_tps
    best = math.sqrt(2 * depth * summary_tokens * (ratio + 1))
    return int(max(min(MIN_PART_TOKENS, most), min(most, best)))


def measure_speed(engine, cache=None, key: str | None = None) -> EngineSpeed | None:
    """Prefill and decode tokens/s of one short generation (cached under key when given)."""
    if cache is not None and key is not None and (stored := cache.get(key)) is not None:
        try:
            return EngineSpeed(**json.loads(stored))
        except (TypeError, ValueError):
            pass
    filler = "The survey counted the houses along the river and noted who lived in each. "
    tokens = engine.tokenize(filler * 64, special=False)[:PROBE_PROMPT_TOKENS]
    if len(tokens) + PROBE_DECODE_TOKENS >= engine.n_ctx:
        return None
    # The filler's continuation is predictable, so the model does not stop early.
    params = SamplingParams(max_tokens=PROBE_DECODE_TOKENS, temperature=0.0, seed=0)
    stats = next(e.stats for e in engine.stream(tokens, params) if isinstance(e, Finished))
    if stats.prefill_tps <= 0 or stats.decode_tps <= 0:
        return None
    speed = EngineSpeed(round(stats.prefill_tps, 1), round(stats.decode_tps, 1))
    if cache is not None and key is not None:
        cache.put(key, json.dumps(speed.__dict__))
    return speed
