"""The batching engine in this process, as the document jobs' --parallel uses it."""

from __future__ import annotations

import threading

import pytest
from test_summarize import long_document, write

from localllm.documents.cache import CallCache
from localllm.documents.readers import open_document
from localllm.engine import Finished, LoadOptions, SamplingParams, Token
from localllm.engine.base import EitherFlag
from localllm.engine.batch import BatchEngine
from localllm.engine.prefix import common_prefix
from localllm.summarize.pipeline import Summarizer, SummaryOptions

PROMPT = "Write a long story about a lighthouse keeper."


@pytest.fixture(scope="module")
def batch_engine(starter_path):
    engine = BatchEngine.load(starter_path, LoadOptions(n_ctx=512), parallel=2)
    yield engine
    engine.close()


def finish_of(events) -> Finished:
    return next(e for e in events if isinstance(e, Finished))


def story(engine, max_tokens: int = 24):
    return engine.chat_tokens([{"role": "user", "content": PROMPT}]), SamplingParams(
        max_tokens=max_tokens, temperature=0.0, seed=1
    )


@pytest.mark.one_build  # who sets a cancel flag, not what the model writes
def test_a_shared_cancel_flag_is_only_read(batch_engine):
    tokens, params = story(batch_engine)
    shared = threading.Event()  # as a summarizer shares one among all its calls
    for _ in range(2):
        finished = finish_of(batch_engine.stream(tokens, params, shared))
        assert finished.stats.stop_reason != "cancelled" and not finished.stopped
        assert finished.stats.completion_tokens > 0
    assert not shared.is_set()


@pytest.mark.one_build
def test_a_reader_that_leaves_frees_its_slot_and_spares_the_others(batch_engine):
    tokens, params = story(batch_engine, max_tokens=64)
    shared = threading.Event()
    results = {}

    def full() -> None:
        results["full"] = finish_of(batch_engine.stream(tokens, params, shared))

    other = threading.Thread(target=full)
    other.start()
    leaving = batch_engine.stream(tokens, params, shared)
    assert isinstance(next(leaving), Token)
    leaving.close()  # the reader goes away after one token
    other.join(timeout=120)
    assert results["full"].stats.stop_reason != "cancelled"
    assert not shared.is_set()
    assert batch_engine.counters["cancelled"] >= 1
    # Setting the caller's flag still stops its request.
    shared.set()
    assert finish_of(batch_engine.stream(tokens, params, shared)).stopped


@pytest.mark.slow
@pytest.mark.one_build  # that parallel parts all complete, not what they say
def test_a_summary_with_parallel_parts_completes_every_call(batch_engine, tmp_path):
    doc = open_document(str(write(tmp_path, "long.txt", long_document(1))), tmp_path)
    job = Summarizer(
        batch_engine,
        "starter",
        CallCache(tmp_path / "cache", False),
        SummaryOptions(length="short"),
        spool_dir=tmp_path / "spool",
        parallel=2,
    )
    result = job.summarize(doc)
    assert result.stats["map_calls"] >= 2
    assert all(part.strip() for part in result.chunk_summaries)
    assert result.summary.strip()


def test_either_flag_waits_as_an_event_does():
    # A remote engine's retry backoff sleeps on the caller's flag: a chat's pair too.
    a, b = threading.Event(), threading.Event()
    flag = EitherFlag(a, b)
    assert flag.wait(0.01) is False and not flag.is_set()
    threading.Timer(0.05, b.set).start()
    assert flag.wait(5) is True
    assert EitherFlag(threading.Event(), b).wait() is True


@pytest.mark.one_build  # how the slots are sized, not what the model writes
def test_auto_slots_take_a_short_window_on_a_cpu_unless_one_is_named(starter_path):
    from localllm.engine.batch import load_batched

    engine = load_batched(starter_path, LoadOptions(), most=2, cpu_slot_ctx=1024)
    try:
        on_cpu = engine.plan.n_gpu_layers == 0
        assert engine.parallel == 2
        assert engine.n_ctx == (1024 if on_cpu else engine.info.context_length)
    finally:
        engine.close()
    named = load_batched(starter_path, LoadOptions(n_ctx=1536), most=2, cpu_slot_ctx=1024)
    try:
        assert named.n_ctx == 1536  # the user's --ctx is kept
    finally:
        named.close()


INSTRUCTIONS = "You answer in one short paragraph and keep to the facts you are given. " * 4


def first_token_choices(engine, tokens) -> dict[str, float]:
    params = SamplingParams(max_tokens=1, temperature=0.0, seed=1, logprobs=5)
    token = next(e for e in engine.stream(tokens, params) if isinstance(e, Token))
    return dict(token.logprobs[0].top)


def shared_prompts(engine, topics):
    return [engine.chat_tokens([{"role": "system", "content": INSTRUCTIONS},
                                {"role": "user", "content": f"Tell me about {t}."}])
            for t in topics]  # fmt: skip


@pytest.mark.one_build  # cache hits, not what the model writes
def test_parallel_requests_sharing_instructions_compute_them_once(starter_path):
    engine = BatchEngine.load(starter_path, LoadOptions(n_ctx=512), parallel=3)
    try:
        prompts = shared_prompts(engine, ("cats", "dogs", "birds"))
        shared = min(common_prefix(prompts[0], p) for p in prompts[1:])
        assert shared >= 64  # instructions long enough that copying them pays
        results = {}

        def answer(i: int) -> None:
            params = SamplingParams(max_tokens=8, temperature=0.0, seed=1)
            results[i] = finish_of(engine.stream(prompts[i], params))

        threads = [threading.Thread(target=answer, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        cached = sorted(results[i].stats.cached_tokens for i in range(3))
        # Submitted together into empty slots: one computes the instructions, the other
        # two wait a step and copy them, then prefill only their own question.
        assert cached == [0, shared, shared]
        assert all(r.stats.completion_tokens > 0 for r in results.values())
    finally:
        engine.close()


def test_a_copied_prefix_gives_the_answer_the_slots_own_cache_gives(starter_path):
    cats, dogs = shared_prompts_of(starter_path, ("cats", "dogs"))
    # Reference: one slot answers cats, then dogs, reusing the prefix from its own cache.
    one = BatchEngine.load(starter_path, LoadOptions(n_ctx=512), parallel=1)
    try:
        first_token_choices(one, cats)
        reference = first_token_choices(one, dogs)
    finally:
        one.close()
    # Two slots: dogs lands on the empty slot and copies the prefix from the one that
    # answered cats.
    two = BatchEngine.load(starter_path, LoadOptions(n_ctx=512), parallel=2)
    try:
        first_token_choices(two, cats)
        busy = two.stream(cats, SamplingParams(max_tokens=48, temperature=0.0, seed=1))
        next(busy)  # cats is answering again in its own slot, so dogs gets the empty one
        params = SamplingParams(max_tokens=1, temperature=0.0, seed=1, logprobs=5)
        events = list(two.stream(dogs, params))
        busy.close()
        token = next(e for e in events if isinstance(e, Token))
        assert finish_of(events).stats.cached_tokens == common_prefix(cats, dogs)
        copied = dict(token.logprobs[0].top)
    finally:
        two.close()
    common = set(reference) & set(copied)
    assert len(common) >= 3  # the same likely tokens, with the same likelihoods
    assert max(abs(reference[t] - copied[t]) for t in common) < 0.02


def shared_prompts_of(starter_path, topics):
    from localllm.engine.llama import load_engine

    engine = load_engine(starter_path, LoadOptions(n_ctx=512))
    try:
        return shared_prompts(engine, topics)
    finally:
        engine.close()
