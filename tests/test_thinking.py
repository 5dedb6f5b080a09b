"""Thinking models: reasoning split from the answer, stored apart, never fed back, and
--think / --no-think reaching the model's own template.

The test model is the starter model with a thinking template written into its file (the
same bytes, another template): like Qwen3's, it takes enable_thinking, opens <think> in
the prompt when thinking is on, and writes an empty reasoning block when it is off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from localllm.chat.conversation import ChatParams, Conversation, Message
from localllm.chat.history import History
from localllm.chat.session import ChatSession, TurnDone
from localllm.documents.calls import ModelCalls
from localllm.engine import LoadOptions, SamplingParams, Token
from localllm.engine.base import Finished, Reasoning
from localllm.engine.reasoning import (
    FORMATS,
    ReasoningSplitter,
    engine_thinking,
    split_reasoning,
    splitter_for,
    thinking_of,
)
from localllm.gguf_meta import read_gguf_info

THINKING_TEMPLATE = (
    "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + "
    "'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and not enable_thinking %}{{ '<think>\n\n</think>\n\n' }}"
    "{% else %}{{ '<think>\n' }}{% endif %}{% endif %}"
)


@pytest.fixture(scope="session")
def think_path(starter_path: Path, tmp_path_factory) -> Path:
    data = bytearray(starter_path.read_bytes())
    old = read_gguf_info(starter_path).chat_template.encode()
    new = THINKING_TEMPLATE.encode()
    new += b"{#" + b" " * (len(old) - len(new) - 4) + b"#}"  # the same length: a comment
    at = data.index(old)
    data[at : at + len(old)] = new
    path = tmp_path_factory.mktemp("thinking") / "smol-thinking.gguf"
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="session")
def think_engine(think_path):
    from localllm.engine.llama import load_engine

    eng = load_engine(think_path, LoadOptions(n_ctx=1024))
    yield eng
    eng.close()


def test_the_format_and_switch_are_read_from_the_template(think_engine, engine):
    assert think_engine.thinking.format.name == "think-tags" and think_engine.thinking.switchable
    assert engine.thinking.format is None and not engine.thinking.switchable
    harmony = thinking_of("...<|channel|>analysis<|message|>...")
    assert harmony.format.name == "harmony" and not harmony.switchable


@pytest.mark.parametrize("inside", [False, True])
def test_the_splitter_holds_markers_split_across_pieces(inside):
    pieces = ["Hm", "m <th", "ink>two plus", " two</thi", "nk>\n\nIt is", " 4."]
    if inside:
        pieces = pieces[2:]
        pieces[0] = pieces[0].removeprefix("ink>")
    splitter = ReasoningSplitter(FORMATS[1], inside)
    events = [e for p in pieces for e in splitter.feed(p)] + list(splitter.finish())
    reasoning = "".join(e.text for e in events if isinstance(e, Reasoning))
    answer = "".join(e.text for e in events if isinstance(e, Token))
    assert reasoning == "two plus two"
    assert answer == ("Hmm \n\nIt is 4." if not inside else "\n\nIt is 4.")
    harmony = splitter_for(FORMATS[0])
    parts = ["<|channel|>analysis<|mess", "age|>think<|end|><|start|>assistant<|chan",
             "nel|>commentary to=functions.f <|constrain|>json<|message|>{}<|call|><|start|>",
             "assistant<|channel|>final<|message|>Hi", "<|return|>"]  # fmt: skip
    out = [e for p in parts for e in harmony.feed(p)] + list(harmony.finish())
    assert [(type(e).__name__, e.text) for e in out] == [
        ("Reasoning", "think"), ("Reasoning", "{}"), ("Token", "Hi")]  # fmt: skip


def test_a_real_reply_is_split_at_the_model_s_own_close_marker(think_engine):
    prompt = think_engine.chat_tokens([{"role": "user", "content": "What is two plus two?"}])
    grammar = 'root ::= [a-z ]{3,24} "</think>" [a-z ]{3,24}'  # the reply must close it
    params = SamplingParams(max_tokens=48, temperature=0.0, seed=0, grammar=grammar)
    raw = "".join(e.text for e in think_engine.stream(prompt, params) if isinstance(e, Token))
    tail = think_engine.detokenize(prompt[-16:])
    events = list(split_reasoning(think_engine.stream(prompt, params), think_engine.thinking,
                                  tail))  # fmt: skip
    reasoning = "".join(e.text for e in events if isinstance(e, Reasoning))
    answer = "".join(e.text for e in events if isinstance(e, Token))
    assert isinstance(events[-1], Finished)
    assert reasoning + "</think>" + answer == raw and reasoning and answer
    assert "</think>" not in reasoning + answer


def test_reasoning_is_stored_apart_and_never_fed_back(think_engine, tmp_path):
    history = History(tmp_path / "history.sqlite3")
    conv = Conversation(model="smol-thinking", params=ChatParams(temperature=0.0,
                                                                 max_tokens=32))  # fmt: skip
    session = ChatSession(think_engine, conv, history)
    events = list(session.send("What is two plus two?"))
    done = next(e for e in events if isinstance(e, TurnDone))
    shown = "".join(e.text for e in events if isinstance(e, Reasoning))
    answer = done.message
    assert answer.reasoning and answer.reasoning == shown.strip()
    assert "<think>" not in answer.content and answer.reasoning not in answer.content
    assert done.stats.reasoning_tokens > 0
    stored = history.get(conv.id).messages[-1]
    assert stored.reasoning == answer.reasoning and stored.content == answer.content
    conv.messages.append(Message("user", "And three plus three?"))
    prompt = think_engine.detokenize(session.context.prepare(conv).tokens)
    assert answer.reasoning not in prompt


def test_no_think_reaches_the_template_and_a_model_without_a_switch_says_so(
        tmp_path, starter_home, think_path):  # fmt: skip
    home = tmp_path / "home"
    shutil.copytree(starter_home, home)
    args = ("--temperature", "0", "--max-tokens", "8", "--no-save", "--stats", "Hi")
    counts = {}
    for flag in ("--think", "--no-think"):
        proc = run_cli("run", "-m", str(think_path), flag, *args, home=home)
        assert proc.returncode == 0, proc.stderr
        counts[flag] = json.loads(proc.stderr.strip().splitlines()[-1])["prompt_tokens"]
    # --no-think renders the template's empty reasoning block: more prompt, no reasoning
    assert counts["--no-think"] > counts["--think"]
    refused = run_cli("run", "--no-think", *args, home=home)
    assert refused.returncode == 1 and "no thinking switch" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_document_jobs_ask_thinking_models_with_thinking_off(think_engine):
    calls = ModelCalls(think_engine)
    prompt = think_engine.detokenize(calls.prompt([{"role": "user", "content": "Resume."}]))
    assert prompt.rstrip().endswith("</think>")  # the empty block: the answer comes at once
    reply, _ = calls.generate("summary", calls.prompt([{"role": "user", "content": "Hola"}]),
                              SamplingParams(max_tokens=12, temperature=0.0, seed=0))  # fmt: skip
    assert "<think>" not in reply and "</think>" not in reply


def test_the_server_gives_reasoning_apart_and_takes_the_switch(tmp_path, starter_home, think_path):
    import ollama
    import openai
    from serverproc import running_server

    home = tmp_path / "home"
    shutil.copytree(starter_home, home)
    imported = run_cli("import", str(think_path), "--name", "smol-thinking", home=home)
    assert imported.returncode == 0, imported.stderr
    with running_server(home, "-m", "smol-thinking", "--parallel", "2", "--ctx", "1024") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        ask = dict(model="smol-thinking", max_tokens=24, temperature=0, seed=0,
                   messages=[{"role": "user", "content": "What is two plus two?"}])  # fmt: skip
        whole = client.chat.completions.create(**ask)
        message = whole.choices[0].message
        reasoning = message.model_extra["reasoning_content"]
        assert reasoning and reasoning not in (message.content or "")
        assert whole.usage.completion_tokens_details.reasoning_tokens > 0
        streamed = [c.choices[0].delta for c in client.chat.completions.create(**ask, stream=True)
                    if c.choices]  # fmt: skip
        thought = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in streamed)
        assert thought.strip() == reasoning  # the same reasoning, streamed apart from the answer
        off = client.chat.completions.create(
            **ask, extra_body={"chat_template_kwargs": {"enable_thinking": False}}
        )
        assert "reasoning_content" not in (off.choices[0].message.model_extra or {})
        assert off.usage.prompt_tokens > whole.usage.prompt_tokens  # the empty block was sent
        chat = ollama.Client(host=url).chat(
            model="smol-thinking",
            messages=ask["messages"],
            options={"num_predict": 24, "temperature": 0},
        )
        assert chat.message.thinking and chat.message.thinking not in chat.message.content
        plain = ollama.Client(host=url).chat(
            model="smol-thinking",
            messages=ask["messages"],
            think=False,
            options={"num_predict": 24},
        )
        assert not plain.message.thinking
        # localllm driving it as a remote engine gets the reasoning apart too
        from localllm.engine.http import EndpointConfig, HttpEngine

        remote = HttpEngine.connect(EndpointConfig("box", url + "/v1"), "smol-thinking")
        try:
            prompt = remote.chat_tokens(ask["messages"])
            params = SamplingParams(max_tokens=24, temperature=0.0, seed=0)
            tail = remote.detokenize(prompt[-16:])
            events = list(split_reasoning(remote.stream(prompt, params),
                                          engine_thinking(remote), tail))  # fmt: skip
        finally:
            remote.close()
        assert "".join(e.text for e in events if isinstance(e, Reasoning)).strip() == reasoning


@pytest.mark.anyio
async def test_the_chat_app_shows_reasoning_dimmed_and_folds_it(think_engine, tmp_path):
    from localllm.tui.app import make_app
    from localllm.tui.controller import ChatController
    from localllm.tui.widgets.prompt_input import PromptInput
    from localllm.tui.widgets.transcript import AnswerMessage, ReasoningNote, Transcript

    history = History(tmp_path / "history.sqlite3")
    controller = ChatController(think_engine, "smol-thinking", history,
                                defaults=ChatParams(temperature=0.0, max_tokens=24))  # fmt: skip
    app = make_app(controller)
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.query_one(PromptInput).insert("What is two plus two?")
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        transcript = app.screen.query_one(Transcript)
        (note,) = transcript.query(ReasoningNote)
        stored = history.get(controller.session.conv.id).messages[-1]
        assert stored.reasoning and note.reasoning.strip() == stored.reasoning
        assert note.text.startswith("▸ reasoned for")  # folded once the answer is done
        (answer,) = transcript.query(AnswerMessage)
        assert stored.reasoning not in answer.text


@pytest.fixture
def anyio_backend():
    return "asyncio"
