"""The engine in a child process (what `localllm chat` uses), on the real starter model."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from localllm.engine import Finished, LoadOptions, SamplingParams, Token
from localllm.engine.bench import bare_round
from localllm.engine.process import ProcessEngine
from localllm.errors import ContextOverflow, InvalidModelFile, LocalLLMError

GREEDY = SamplingParams(max_tokens=24, temperature=0.0, seed=0)
QUESTION = [{"role": "user", "content": "What colour is the sky on a clear day?"}]


@pytest.fixture(scope="module")
def child(starter_path):
    engine = ProcessEngine(starter_path, LoadOptions(n_ctx=2048))  # as the `engine` fixture
    yield engine
    engine.close()


def text_of(events) -> tuple[str, Finished]:
    events = list(events)
    return "".join(e.text for e in events if isinstance(e, Token)), events[-1]


def test_it_answers_exactly_as_the_engine_in_this_process(child, engine):
    assert child.n_ctx == engine.n_ctx and child.plan.n_threads == engine.plan.n_threads
    assert child.backend == engine.backend and child.info.architecture == "llama"
    assert child.chat_tokens(QUESTION) == engine.chat_tokens(QUESTION)
    assert child.tokenize("Hola, ¿qué tal?") == engine.tokenize("Hola, ¿qué tal?")
    prompt = engine.chat_tokens(QUESTION)
    here, _ = text_of(engine.stream(prompt, GREEDY))
    there, finished = text_of(child.stream(prompt, GREEDY))
    assert there == here and "blue" in there.lower()
    assert finished.stats.completion_tokens == 24 and not finished.stopped


def test_cancel_stops_the_child_within_a_batch(child):
    cancel = threading.Event()
    prompt = child.chat_tokens([{"role": "user", "content": "Write a long story."}])
    events = []
    for event in child.stream(prompt, SamplingParams(max_tokens=400, temperature=0.0), cancel):
        events.append(event)
        cancel.set()
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.stopped
    assert finished.stats.stop_reason == "cancelled" and finished.stats.completion_tokens < 100


def test_an_abandoned_stream_leaves_the_engine_usable(child):
    prompt = child.chat_tokens(QUESTION)
    stream = child.stream(prompt, SamplingParams(max_tokens=400, temperature=0.0))
    next(stream)
    stream.close()
    assert child.detokenize(child.tokenize("still here", add_bos=False)) == "still here"
    assert child.apply(bare_round, prompt, 8).decode_tokens == 8  # runs in the child


def test_errors_come_back_as_themselves(child):
    with pytest.raises(ContextOverflow, match="raise --ctx"):
        list(child.stream(list(range(child.n_ctx + 10)), GREEDY))
    assert child.tokenize("ok")  # and the child is still serving


def test_a_file_that_is_not_a_model_is_a_one_line_error(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model")
    with pytest.raises(InvalidModelFile, match="not a GGUF model file") as caught:
        ProcessEngine(bad)
    assert "\n" not in str(caught.value)


def test_a_dead_child_is_reported_not_waited_for(starter_path):
    engine = ProcessEngine(starter_path)
    os.kill(engine._process.pid, signal.SIGKILL)
    engine._process.join()
    with pytest.raises(LocalLLMError, match="model process stopped"):
        engine.tokenize("hello")
    engine.close()


def test_close_ends_the_child_process(starter_path):
    engine = ProcessEngine(starter_path)
    process = engine._process
    assert process.is_alive()
    engine.close()
    assert not process.is_alive() and process.exitcode == 0


def test_closing_during_an_answer_stops_it_and_the_child(starter_path):
    engine = ProcessEngine(starter_path)
    prompt = engine.chat_tokens([{"role": "user", "content": "Write a very long story."}])
    consumer = threading.Thread(
        target=lambda: list(engine.stream(prompt, SamplingParams(max_tokens=2000))), daemon=True
    )
    consumer.start()  # as the app's worker, still streaming when the user quits
    process = engine._process
    engine.close()
    consumer.join(timeout=30)
    assert not process.is_alive() and not consumer.is_alive()
