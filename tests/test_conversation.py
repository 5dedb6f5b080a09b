"""Conversations that never overflow, on the real starter model."""

from __future__ import annotations

import pytest
from conftest import RecordingEngine

from localllm.chat.context import CUT_MARKER
from localllm.chat.conversation import ChatParams, Conversation, Message
from localllm.chat.history import History
from localllm.chat.session import ChatSession, ContextNotice, Guardrails, Retracted, TurnDone
from localllm.engine import Token
from localllm.errors import ContextOverflow

SYSTEM = "You are a concise assistant. Answer in one or two sentences."
QUESTIONS = [
    "Tell me about the city of {}.",
    "What is a famous food from {}?",
    "What river or sea is near {}?",
    "Name a museum or landmark in {}.",
]
CITIES = ["Paris", "Madrid", "Rome", "Berlin", "Lisbon", "Vienna", "Prague", "Dublin", "Oslo",
          "Athens"]  # fmt: skip


def script(turns: int) -> list[str]:
    return [QUESTIONS[i % 4].format(CITIES[i // 4 % len(CITIES)]) for i in range(turns)]


def run_turn(session, text):
    events = list(session.send(text))
    done = events[-1]
    assert isinstance(done, TurnDone)
    return events, done


@pytest.mark.slow
@pytest.mark.one_build  # what it asserts are token counts, whatever the answers say
def test_forty_turns_in_a_1k_window_never_overflow(engine_1k, tmp_path):
    engine = RecordingEngine(engine_1k)
    conv = Conversation(
        model="starter", system_prompt=SYSTEM,
        params=ChatParams(temperature=0.0, max_tokens=64, policy="summary"),
    )  # fmt: skip
    history = History(tmp_path / "history.sqlite3")
    session = ChatSession(engine, conv, history)
    notices, memory_after_first_fold = [], None
    for text in script(40):
        events, done = run_turn(session, text)
        assert done.message.content.strip(), text
        for e in events:
            if isinstance(e, ContextNotice):
                notices.append(e.event)
                if e.event.kind == "folded" and memory_after_first_fold is None:
                    memory_after_first_fold = conv.memory
    # Every call, answers and summaries alike, fits the window with its reply reserve.
    for prompt, reserve in engine.calls:
        assert len(prompt) + reserve <= engine_1k.n_ctx
    answer_prompts = [engine_1k.detokenize(p) for p, reserve in engine.calls if reserve == 64]
    assert len(answer_prompts) == 40
    assert all(SYSTEM in prompt for prompt in answer_prompts)
    folds = [n for n in notices if n.kind == "folded"]
    assert folds, "40 turns cannot fit in 1024 tokens without folding"
    assert all(n.turns > 0 and n.tokens > 0 for n in folds)
    assert memory_after_first_fold and memory_after_first_fold.strip()
    # Eviction is in blocks: far fewer folds than turns, so the prompt prefix stays stable.
    assert len(folds) <= 40 // 4
    stored = history.get(conv.id)
    assert len(stored.messages) == 80 and stored.memory == conv.memory
    assert stored.window_start == conv.window_start > 0


def test_window_policy_drops_turns_with_an_event(engine_1k):
    conv = Conversation(model="starter", params=ChatParams(temperature=0, max_tokens=64,
                                                           policy="window"))  # fmt: skip
    session = ChatSession(engine_1k, conv)
    long_question = "Describe, in detail, the history of bread. " * 25
    dropped = []
    for _ in range(4):
        events, _ = run_turn(session, long_question)
        dropped += [e.event for e in events if isinstance(e, ContextNotice)]
    assert dropped and dropped[0].kind == "dropped" and dropped[0].turns >= 1
    assert conv.memory == ""


def test_policy_off_refuses_with_the_overflow_and_stores_nothing(engine_1k, tmp_path):
    conv = Conversation(model="starter", params=ChatParams(temperature=0, max_tokens=64,
                                                           policy="off"))  # fmt: skip
    history = History(tmp_path / "h.sqlite3")
    session = ChatSession(engine_1k, conv, history)
    run_turn(session, "Hello there, who are you?")
    stored_before = len(history.get(conv.id).messages)
    with pytest.raises(ContextOverflow, match=r"tokens over"):
        list(session.send("Tell me everything about the ocean. " * 128))
    assert len(history.get(conv.id).messages) == stored_before == 2
    assert len(conv.messages) == 2


def test_a_message_longer_than_the_window_is_cut_and_still_answered(engine_1k):
    engine = RecordingEngine(engine_1k)
    conv = Conversation(model="starter", params=ChatParams(temperature=0, max_tokens=48))
    session = ChatSession(engine, conv)
    huge = "The quick brown fox jumps over the lazy dog. " * 400 + "What animal jumps?"
    events, done = run_turn(session, huge)
    cuts = [e.event for e in events if isinstance(e, ContextNotice) and e.event.kind == "cut"]
    assert cuts and cuts[0].tokens > 1000
    prompt, reserve = engine.calls[-1]
    assert len(prompt) + reserve <= engine_1k.n_ctx
    assert CUT_MARKER.split("{n}")[0].strip() in engine_1k.detokenize(prompt)
    assert done.message.content.strip()
    assert conv.messages[0].content == huge  # the stored message keeps every word


def test_follow_up_reuses_the_kv_cache(engine_1k):
    conv = Conversation(model="starter", params=ChatParams(temperature=0, max_tokens=32))
    session = ChatSession(engine_1k, conv)
    _, first = run_turn(session, "Which city is the capital of France?")
    _, second = run_turn(session, "And of Italy?")
    assert second.stats.cached_tokens >= first.prompt_tokens - 1
    assert second.stats.prompt_tokens - second.stats.cached_tokens < 40


def test_guardrails_regenerate_then_withhold(engine_1k):
    question = "Which city is the capital of France?"
    params = ChatParams(temperature=0, max_tokens=24, seed=1)
    engine_1k.reset()  # both runs start from an empty cache, so the first attempt repeats
    _, plain = run_turn(ChatSession(engine_1k, Conversation(model="starter", params=params)),
                        question)  # fmt: skip
    words = [w.strip(".,!?;:\"'()") for w in plain.message.content.split()]
    blocked = max(words, key=len).lower()  # a word the greedy answer is sure to contain
    assert len(blocked) >= 4, plain.message.content
    engine_1k.reset()
    conv = Conversation(model="starter", params=params)
    session = ChatSession(engine_1k, conv, guardrails=Guardrails((blocked,), max_tries=3))
    events, done = run_turn(session, question)
    retracted = [e for e in events if isinstance(e, Retracted)]
    assert retracted, f"the greedy first answer contains {blocked!r} and must be retracted"
    assert blocked not in done.message.content.lower()
    if done.withheld:
        assert done.message.note == "withheld" and "withheld" in done.message.content
    # Tokens of a retracted attempt never reach the caller after the retraction.
    shown = "".join(e.text for e in events[events.index(retracted[-1]) :] if isinstance(e, Token))
    assert blocked not in shown.lower()


def test_regenerate_and_edit_replace_the_last_turn(engine_1k, tmp_path):
    history = History(tmp_path / "h.sqlite3")
    conv = Conversation(model="starter", params=ChatParams(temperature=0.8, max_tokens=16, seed=3))
    session = ChatSession(engine_1k, conv, history)
    run_turn(session, "Say something about cats.")
    list(session.regenerate())
    assert [m.role for m in history.get(conv.id).messages] == ["user", "assistant"]
    list(session.edit_last("Say something about dogs."))
    stored = history.get(conv.id).messages
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[0].content == "Say something about dogs."


def test_an_interrupted_answer_keeps_the_question_and_roles_alternate(engine_1k, tmp_path):
    """Templates such as Gemma 3's and Mistral's refuse two user turns in a row."""
    history = History(tmp_path / "h.sqlite3")
    conv = Conversation(model="starter", params=ChatParams(temperature=0, max_tokens=16))
    session = ChatSession(engine_1k, conv, history)
    run_turn(session, "Name a colour.")
    events = session.send("Name a fruit.")
    for event in events:
        if isinstance(event, Token):
            break
    events.close()  # Ctrl+C mid-answer: the caller stops listening
    stored = history.get(conv.id).messages
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[2].content == "Name a fruit." and stored[3].note == "interrupted"
    left = Message("user", "Name a vegetable.")  # what a process killed mid-answer leaves
    conv.messages.append(left)
    history.add_message(conv, left)
    run_turn(session, "Name an animal.")
    stored = history.get(conv.id).messages
    assert [m.role for m in stored] == ["user", "assistant"] * 4
    assert [m.content for m in stored[4::2]] == ["Name a vegetable.", "Name an animal."]
    assert stored[5].note == "interrupted" and stored[7].note is None  # answered this time
