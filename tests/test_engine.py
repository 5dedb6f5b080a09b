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


def test_seeded_sampling_repeats_and_seeds_differ(engine):
    prompt = ask(engine, "Tell me a short story about a cat.")
    sampled = [SamplingParams(max_tokens=24, temperature=0.9, seed=s) for s in (7, 7, 8)]
    first, again, other = (generate(engine, prompt, p)[0] for p in sampled)
    assert first == again
    assert first != other


def logits_after(engine, tokens):
    """The model's next-token logits after tokens (generating one token leaves them)."""
    import llama_cpp
    import numpy as np

    generate(engine, tokens, SamplingParams(max_tokens=1, temperature=0.0))
    logits = llama_cpp.llama_get_logits_ith(engine._llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(logits, shape=(engine._llm.n_vocab(),)).copy()


@pytest.mark.parametrize("model", ["starter", "gemma"])
def test_a_prompt_continued_from_the_cache_sees_what_a_fresh_one_sees(model, engine, gemma_path):
    """A follow-up reuses the first prompt's KV cache (Gemma's sliding-window cache may not
    drop a tail, and then starts over). Computed in other batch shapes the logits are not
    bit-identical (so near-ties in a long greedy answer may differ), but they must agree."""
    if model == "gemma":
        from localllm.engine import LoadOptions
        from localllm.engine.llama import load_engine

        engine = load_engine(gemma_path, LoadOptions(n_ctx=1024))
    opening = "A list of animals, from the largest:"
    first, _ = generate(engine, engine.tokenize(opening))
    tokens = engine.tokenize(opening + first + " And now the smallest:")
    _, done = generate(engine, tokens, SamplingParams(max_tokens=1, temperature=0.0))
    cached = logits_after(engine, tokens)
    engine.reset()
    fresh = logits_after(engine, tokens)
    spread = float(fresh.max() - fresh.min())
    assert cached.argmax() == fresh.argmax()
    assert float(abs(cached - fresh).max()) < 0.02 * spread
    if model == "starter":
        assert done.stats.cached_tokens >= len(engine.tokenize(opening)) - 1
    else:
        engine.close()


def test_the_repeat_penalty_takes_effect(engine):
    prompt = ask(engine, "Write the word cat twenty times, separated by spaces.")
    plain, _ = generate(engine, prompt, SamplingParams(max_tokens=40, temperature=0.0))
    penalised, _ = generate(
        engine, prompt, SamplingParams(max_tokens=40, temperature=0.0, repeat_penalty=1.8)
    )
    assert plain.lower().count("cat") > penalised.lower().count("cat")
