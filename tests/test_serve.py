"""`localllm serve` with the real openai and ollama clients, on the starter model."""

from __future__ import annotations

import json
import threading

import httpx
import jsonschema
import numpy as np
import ollama
import openai
import pytest
from serverproc import running_server

MODEL = "smollm2-135m"
pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def server(starter_home):
    with running_server(starter_home, "-m", MODEL, "--parallel", "8", "--ctx", "1024") as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def oclient(server):
    return ollama.Client(host=server)


def ask(client, content, **kwargs):
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], **kwargs
    )


def test_chat_streamed_and_whole_give_the_same_answer_and_usage(client):
    # A first call fills the slot's cache, so both compared calls compute the same way (the
    # prompt's last token alone): a fresh prefill rounds differently on some kernels.
    ask(client, "Name three fruits.", max_tokens=1, temperature=0, seed=1)
    whole = ask(client, "Name three fruits.", max_tokens=24, temperature=0, seed=1)
    chunks = list(ask(client, "Name three fruits.", max_tokens=24, temperature=0, seed=1,
                      stream=True, stream_options={"include_usage": True}))  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert whole.choices[0].message.content == streamed and streamed
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    finish = [f for f in finish if f]
    assert finish == [whole.choices[0].finish_reason]
    # The same history again reuses the slot's cache: only the last token is recomputed.
    again = ask(client, "Name three fruits.", max_tokens=24, temperature=0, seed=1)
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1


def test_completions_and_max_tokens(client):
    out = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5,
                                    temperature=0.8, seed=3)  # fmt: skip
    assert out.usage.completion_tokens <= 5 and out.choices[0].finish_reason in ("length", "stop")
    assert [m.id for m in client.models.list()] == ["smollm2-135m:q4_1"]


SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
     "age": {"type": "integer"}}, "required": ["name", "age"]},
    {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}},
     "required": ["color"]},
    {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string",
     "maxLength": 10}, "minItems": 1, "maxItems": 3}}, "required": ["tags"]},
    {"type": "object", "properties": {"ok": {"type": "boolean"}, "note": {"type": "string",
     "maxLength": 15}}, "required": ["ok"]},
    {"$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"},
     "y": {"type": "number"}}, "required": ["x", "y"]}},
     "type": "object", "properties": {"a": {"$ref": "#/$defs/point"},
     "b": {"$ref": "#/$defs/point"}}, "required": ["a", "b"]},
    {"type": "object", "properties": {"city": {"type": "object", "properties": {
     "name": {"type": "string", "maxLength": 16}, "country": {"type": "string", "maxLength": 16}},
     "required": ["name"]}}, "required": ["city"]},
    {"type": "object", "properties": {"day": {"type": "string", "format": "date"}},
     "required": ["day"]},
    {"type": "object", "properties": {"n": {"type": "integer"}, "kind": {"anyOf": [
     {"const": "odd"}, {"const": "even"}]}}, "required": ["n", "kind"]},
]  # fmt: skip
PROMPTS = ["Describe a person.", "Pick a color.", "Give tags for a blog post about cats.",
           "Is water wet?", "Two points on a plane.", "A city you like.",
           "When is new year?"]  # fmt: skip


def test_every_json_schema_answer_is_valid(client):
    jobs = [(i, s, PROMPTS[i % len(PROMPTS)], seed) for i, s in enumerate(SCHEMAS)
            for seed in range(7)]  # fmt: skip
    answers = [None] * len(jobs)

    def one(k, job):
        i, schema, prompt, seed = job
        fmt = {"type": "json_schema", "json_schema": {"name": f"s{i}", "schema": schema}}
        answers[k] = ask(client, prompt, response_format=fmt, max_tokens=200, temperature=0.9,
                         seed=seed)  # fmt: skip

    threads = [threading.Thread(target=one, args=(k, job)) for k, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(jobs) >= 50
    for (_, schema, _, _), answer in zip(jobs, answers, strict=True):
        assert answer.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(answer.choices[0].message.content), schema)


def test_json_object_mode_and_unenforceable_schema(client):
    out = ask(client, "A JSON object about a dog.", response_format={"type": "json_object"},
              max_tokens=120, temperature=0.7, seed=2)  # fmt: skip
    if out.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(out.choices[0].message.content), dict)
    bad = {
        "type": "json_schema",
        "json_schema": {
            "name": "n",
            "schema": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}},
        },
    }
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "A number.", response_format=bad)
    assert "minimum" in err.value.message


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 20},
                "unit": {"enum": ["C", "F"]},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string", "maxLength": 10}},
    "required": ["zone"]}}}  # fmt: skip


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_time"}}]
)
def test_forced_tool_calls_match_the_tool_schema(client, choice):
    out = ask(client, "What's the weather in Paris?", tools=[WEATHER, TIME], tool_choice=choice,
              max_tokens=80, temperature=0)  # fmt: skip
    assert out.choices[0].finish_reason == "tool_calls"
    (call,) = out.choices[0].message.tool_calls
    if isinstance(choice, dict):
        assert call.function.name == "get_time"
    tool = {"get_weather": WEATHER, "get_time": TIME}[call.function.name]
    jsonschema.validate(json.loads(call.function.arguments), tool["function"]["parameters"])


def test_auto_tools_reach_a_model_whose_template_has_none(server):
    from localllm.chat.tools import TOOLS_INSTRUCTION

    body = {"model": MODEL, "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER], "max_tokens": 8, "temperature": 0}  # fmt: skip
    reply = httpx.post(server + "/v1/chat/completions", json=body, timeout=120).json()
    (event,) = [e for e in reply["localllm"]["context"] if e["kind"] == "tools"]
    assert "no tool support" in event["text"]
    # The prompt the model read holds the function: more tokens than the bare question.
    bare = httpx.post(server + "/v1/chat/completions", timeout=120,
                      json={**body, "tools": None}).json()  # fmt: skip
    described = httpx.post(server + "/tokenize", json={"content": TOOLS_INSTRUCTION}).json()
    grown = reply["usage"]["prompt_tokens"] - bare["usage"]["prompt_tokens"]
    assert grown > len(described["tokens"]) and "localllm" not in bare


def test_embeddings_shape_norm_and_batch(client):
    one = client.embeddings.create(model=MODEL, input="the cat sat")
    many = client.embeddings.create(model=MODEL, input=["the cat sat", "stock markets", "x"])
    vectors = np.array([d.embedding for d in many.data])
    assert vectors.shape == (3, len(one.data[0].embedding)) and vectors.shape[1] > 100
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.allclose(vectors[0], one.data[0].embedding, atol=1e-4)
    assert many.usage.prompt_tokens > one.usage.prompt_tokens


def test_errors_come_in_openai_shape(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model",
                                       messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert "no-such-model" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "word " * 1200, max_tokens=10)
    assert err.value.code == "context_length_exceeded" and "1024" in err.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="/etc/passwd",
                                       messages=[{"role": "user", "content": "hi"}])  # fmt: skip


def test_window_policy_drops_old_turns_and_says_so(server):
    turns = []
    for i in range(12):
        turns += [{"role": "user", "content": f"Question {i}: " + "tell me more " * 20},
                  {"role": "assistant", "content": "Sure. " + "details " * 20}]  # fmt: skip
    turns.append({"role": "user", "content": "Thanks!"})
    body = {"model": MODEL, "messages": turns, "max_tokens": 16, "context_policy": "window"}
    reply = httpx.post(server + "/v1/chat/completions", json=body, timeout=120).json()
    (event,) = [e for e in reply["localllm"]["context"] if e["kind"] == "dropped"]
    assert event["turns"] > 0 and reply["usage"]["prompt_tokens"] < 1024 - 16


def test_eight_concurrent_streams_match_their_solo_answers(client):
    prompts = [f"Tell me a fact about the number {n}." for n in range(8)]
    kwargs = dict(max_tokens=40, temperature=0, seed=5, logprobs=True, top_logprobs=2)
    solo = [ask(client, p, **kwargs) for p in prompts]
    together = [None] * 8

    def stream(i):
        chunks = list(ask(client, prompts[i], stream=True, **kwargs))
        together[i] = [lp for c in chunks if c.choices and c.choices[0].logprobs
                       for lp in c.choices[0].logprobs.content]  # fmt: skip

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for alone, batched in zip(solo, together, strict=True):
        a = alone.choices[0].logprobs.content
        for x, y in zip(a, batched, strict=False):
            if x.token != y.token:  # batched kernels may round differently: only at a near-tie
                assert abs(x.top_logprobs[0].logprob - x.top_logprobs[1].logprob) < 0.1
                break
            assert abs(x.logprob - y.logprob) < 0.05
        else:
            assert len(a) == len(batched)


def test_a_client_that_goes_away_frees_its_slot(server):
    before = httpx.get(server + "/health").json()["cancelled"]
    body = {"model": MODEL, "stream": True, "max_tokens": 900, "temperature": 1.0, "seed": 9,
            "messages": [{"role": "user", "content": "Write a very long story."}]}  # fmt: skip
    with httpx.stream("POST", server + "/v1/chat/completions", json=body, timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i == 5:
                break
    health = _wait(lambda: httpx.get(server + "/health").json(),
                   lambda h: h["slots_processing"] == 0)  # fmt: skip
    assert health["cancelled"] == before + 1


def _wait(read, done, tries=100):
    import time

    for _ in range(tries):
        value = read()
        if done(value):
            return value
        time.sleep(0.1)
    return value


def test_ollama_client_chat_generate_and_models(oclient):
    hello = [{"role": "user", "content": "Say hello."}]
    oclient.chat(model=MODEL, messages=hello, options={"temperature": 0, "num_predict": 1})
    whole = oclient.chat(model=MODEL, messages=[{"role": "user", "content": "Say hello."}],
                         options={"temperature": 0, "num_predict": 16, "seed": 1})  # fmt: skip
    parts = list(oclient.chat(model=MODEL, messages=[{"role": "user", "content": "Say hello."}],
                              options={"temperature": 0, "num_predict": 16, "seed": 1},
                              stream=True))  # fmt: skip
    assert "".join(p.message.content for p in parts) == whole.message.content
    assert parts[-1].done and whole.eval_count == parts[-1].eval_count > 0
    gen = oclient.generate(model=MODEL, prompt="The sky is", raw=True,
                           options={"num_predict": 8, "temperature": 0.5})  # fmt: skip
    assert gen.done and gen.eval_count <= 8 and gen.context
    schema = SCHEMAS[0]
    out = oclient.chat(model=MODEL, messages=[{"role": "user", "content": "A person."}],
                       format=schema, options={"num_predict": 200, "seed": 4})  # fmt: skip
    jsonschema.validate(json.loads(out.message.content), schema)
    (tag,) = oclient.list().models
    assert tag.model == "smollm2-135m:q4_1" and tag.details.format == "gguf" and tag.size > 0
    shown = oclient.show(MODEL)
    assert "im_start" in shown.template and shown.modelinfo["general.architecture"] == "llama"
    running = {m.model: m for m in oclient.ps().models}
    assert running["smollm2-135m:q4_1"].context_length == 1024
    vectors = oclient.embed(model=MODEL, input=["a", "b"]).embeddings
    assert len(vectors) == 2 and abs(np.linalg.norm(vectors[0]) - 1) < 1e-4


def test_ollama_errors_and_pull_refused(oclient, server):
    with pytest.raises(ollama.ResponseError) as err:
        oclient.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 404 and "no-such-model" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        oclient.pull("qwen2.5-1.5b")
    assert err.value.status_code == 403 and "--allow-pull" in err.value.error
    assert httpx.get(server + "/api/version").json()["version"]


def test_tokenize_detokenize_and_template(server):
    tokens = httpx.post(server + "/tokenize", json={"content": "Hello world"}).json()["tokens"]
    text = httpx.post(server + "/detokenize", json={"tokens": tokens}).json()["content"]
    assert text.strip() == "Hello world"
    prompt = httpx.post(server + "/apply-template", json={
        "messages": [{"role": "user", "content": "Hi"}]}).json()["prompt"]  # fmt: skip
    assert "Hi" in prompt and prompt.rstrip().endswith("assistant")


@pytest.mark.one_build  # asserts that the option reaches llama.cpp and the slots work with it
def test_flash_attention_serves_concurrent_streams(starter_home):
    with running_server(starter_home, "-m", MODEL, "--parallel", "4", "--ctx", "512",
                        "--flash-attn") as url:  # fmt: skip
        replies = [None] * 4

        def ask_one(i):
            body = {"model": MODEL, "max_tokens": 12, "temperature": 0,
                    "messages": [{"role": "user", "content": f"Count to {i + 3}."}]}  # fmt: skip
            replies[i] = httpx.post(url + "/v1/chat/completions", json=body, timeout=120)

        threads = [threading.Thread(target=ask_one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.status_code == 200 for r in replies)
        assert all(r.json()["usage"]["completion_tokens"] >= 1 for r in replies)
        assert httpx.get(url + "/api/ps").json()["models"][0]["flash_attention"] is True
