"""The llama.cpp engine on the real starter model, in process."""

from __future__ import annotations

import threading

import pytest

from localllm.engine import Finished, SamplingParams, Token
from localllm.engine.llama import ContextOverflow

GREEDY = SamplingParams(max_tokens=32, temperature=0.0)


def generate(engine, tokens, params=GREEDY, cancel=None):
    text, finished = "", None
    for event in engine.stream(tokens, params, cancel):
        if isinstance(event, Token):
            text += event.text
        else:
            finished = event
    assert isinstance(finished, Finished)
    return text, finished


def ask(engine, question: str) -> list[int]:
    return engine.chat_tokens([{"role": "user", "content": question}])


def test_chat_template_comes_from_the_model(engine):
    prompt = engine.render_chat([{"role": "user", "content": "Hello"}])
    assert prompt.startswith("<|im_start|>")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "Hello" in prompt


def test_system_prompt_replaces_the_default_one(engine):
    prompt = engine.render_chat(
        [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Hi"}]
    )
    assert "You are a pirate." in prompt
    assert "SmolLM" not in prompt


def test_special_tokens_are_single_tokens(engine):
    tokens = ask(engine, "Hi")
    assert tokens[0] == engine.tokenize("<|im_start|>")[0]
    assert engine.detokenize(engine.tokenize("plain words", special=False)) == "plain words"


def test_answer_stops_at_end_of_turn(engine):
    text, done = generate(engine, ask(engine, "Which city is the capital of France?"))
    assert "Paris" in text
    assert done.stats.stop_reason == "eos"
    assert "<|im_end|>" not in text


def test_reuses_the_kv_cache_for_a_shared_prefix(engine):
    history = [
        {"role": "user", "content": "Which city is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ]
    first = engine.chat_tokens(history[:1])
    generate(engine, first)
    second = engine.chat_tokens([*history, {"role": "user", "content": "And of Italy?"}])
    _, done = generate(engine, second)
    assert done.stats.cached_tokens >= len(first) - 1
    assert done.stats.prompt_tokens == len(second)


def test_cancel_stops_between_tokens(engine):
    cancel = threading.Event()
    seen = 0
    done = None
    params = SamplingParams(max_tokens=200, temperature=0.0)
    for event in engine.stream(ask(engine, "Write a long story about a dragon."), params, cancel):
        if isinstance(event, Token):
            seen += 1
            if seen == 3:
                cancel.set()
        else:
            done = event
    assert done.stopped and done.stats.stop_reason == "cancelled"
    assert done.stats.completion_tokens <= 4


def test_stop_strings_are_never_shown(engine):
    text, done = generate(
        engine,
        ask(engine, "Which city is the capital of France?"),
        SamplingParams(max_tokens=32, temperature=0.0, stop=("Par",)),
    )
    assert done.stats.stop_reason == "stop"
    assert "Par" not in text and text.endswith("is ")


def test_prompt_that_fills_the_window_is_refused(engine):
    too_long = engine.tokenize("word " * (engine.n_ctx + 10), special=False)
    with pytest.raises(ContextOverflow, match="context window"):
        list(engine.stream(too_long, GREEDY))


def test_answer_is_cut_to_the_room_left_in_the_window(engine):
    prompt = engine.tokenize("word " * (engine.n_ctx - 3), special=False)[: engine.n_ctx - 3]
    _, done = generate(engine, prompt, SamplingParams(max_tokens=50, temperature=0.0))
    assert done.stats.completion_tokens <= 3
