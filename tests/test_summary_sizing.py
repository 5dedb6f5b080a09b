"""Part length from the engine's speed: shorter than the window where prefill slows down."""

from __future__ import annotations

import pytest

from localllm.documents.cache import CallCache
from localllm.gguf_meta import read_gguf_info
from localllm.summarize.sizing import (
    EngineSpeed,
    attention_half_depth,
    measure_speed,
    part_tokens,
)


@pytest.mark.model
def test_a_small_model_gets_parts_shorter_than_a_long_window(starter_path):
    info = read_gguf_info(starter_path)
    depth = attention_half_depth(info)
    # SmolLM2-135M: 30 layers of width 576; attention over ~3.9k tokens costs what its
    # weights do (measured: 273 tok/s prefill at 512 tokens, 124 tok/s over 8k).
    assert 3000 < depth < 5000
    cpu = EngineSpeed(prefill_tps=273, decode_tps=100)
    chosen = part_tokens(7800, info, cpu, 256)
    assert 1500 < chosen < 4000
    # Where prefill is far faster than decoding (a GPU), fewer, longer parts win.
    assert part_tokens(7800, info, EngineSpeed(20000, 100), 256) == 7800
    # Never longer than the window allows, never shorter than 512 (or the window).
    assert part_tokens(1000, info, cpu, 256) == 1000
    assert part_tokens(300, info, EngineSpeed(1, 1000), 256) == 300
    assert part_tokens(7800, info, None, 256) == 7800  # unmeasured: the window, as before


@pytest.mark.model
def test_the_speed_is_measured_once_and_kept(engine, tmp_path):
    cache = CallCache(tmp_path)
    speed = measure_speed(engine, cache, "k")
    assert speed.prefill_tps > 0 and speed.decode_tps > 0
    assert measure_speed(None, cache, "k") == speed  # from the cache: the engine is not used
