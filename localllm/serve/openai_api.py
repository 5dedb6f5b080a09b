"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions,
/v1/embeddings, with SSE streaming as OpenAI sends it.

Extras beyond OpenAI's fields (documented in the README): `context_policy`
("off", "window", "summary") in the request; `localllm.context` in the
response lists what the policy dropped or folded.
"""

from __future__ import annotations

import base64
import json
import uuid

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from localllm.chat.tools import parse_forced, parse_tool_calls
from localllm.engine.base import Finished, Reasoning, SamplingParams, Token
from localllm.errors import RequestError
from localllm.serve.runner import Job, Outcome, json_mode_schema

router = APIRouter()

FINISH = {"eos": "stop", "stop": "stop", "length": "length", "cancelled": "stop"}


async def read_json(request: Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    return body


def embedding_inputs(body: dict) -> list[str]:
    """The texts to embed: `input` as a string or a non-empty list of strings (both APIs)."""
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise RequestError("input must be a string or a non-empty list of strings")
    return inputs


def _number(body: dict, key: str, default, kind=float, low=None, high=None):
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{key} must be a number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise RequestError(f"{key} must be between {low} and {high}")
    return kind(value)


def _stops(value) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise RequestError("stop must be a string or a list of strings")
    return tuple(s for s in stops if s)


def sampling_from(body: dict) -> tuple[SamplingParams, bool]:
    """SamplingParams from OpenAI fields, and whether max_tokens was given."""
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    given = max_tokens is not None
    top_logprobs = _number(body, "top_logprobs", 0, int, 0, 20)
    logprobs = top_logprobs if body.get("logprobs") in (True, 1) else None
    if isinstance(body.get("logprobs"), int) and not isinstance(body.get("logprobs"), bool):
        logprobs = min(20, body["logprobs"])  # /v1/completions: logprobs is the runner-up count
    params = SamplingParams(
        max_tokens=_number({"m": max_tokens}, "m", 512, int, 1) if given else 512,
        temperature=_number(body, "temperature", 1.0, float, 0, 2),
        top_p=_number(body, "top_p", 1.0, float, 0, 1),
        top_k=_number(body, "top_k", 0, int, 0),
        min_p=_number(body, "min_p", 0.0, float, 0, 1),
        repeat_penalty=_number(body, "repeat_penalty", 1.0, float, 0),
        seed=_number(body, "seed", None, int),
        stop=_stops(body.get("stop")),
        logprobs=logprobs,
        grammar=_grammar(body.get("grammar")),
    )
    return params, given


def _grammar(value) -> str | None:
    """llama-server's `grammar` extension: GBNF the answer must match."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RequestError("grammar must be a GBNF string")
    return value


def schema_from(response_format) -> dict | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return json_mode_schema()
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        if not isinstance(spec.get("schema"), dict):
            raise RequestError("response_format.json_schema.schema must be a JSON schema object")
        return spec["schema"]
    raise RequestError("response_format.type must be text, json_object or json_schema")


def think_from(body: dict) -> bool | None:
    """Thinking on or off for this request: chat_template_kwargs.enable_thinking (as vLLM
    and llama-server read it), or `think` (as Ollama's API has it)."""
    kwargs = body.get("chat_template_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise RequestError("chat_template_kwargs must be an object")
    value = kwargs.get("enable_thinking", body.get("think"))
    if value is not None and not isinstance(value, bool):
        raise RequestError("enable_thinking (or think) must be true or false")
    return value


def _job(body: dict, *, chat: bool) -> Job:
    params, given = sampling_from(body)
    if body.get("n", 1) != 1:
        raise RequestError("n must be 1 (send separate requests: they are batched)")
    if chat:
        return Job(model=body.get("model"), params=params, messages=body.get("messages"),
                   schema=schema_from(body.get("response_format")), tools=body.get("tools"),
                   tool_choice=body.get("tool_choice", "auto"),
                   policy=body.get("context_policy") or "", max_tokens_given=given,
                   think=think_from(body))  # fmt: skip
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
        prompt = prompt[0]
    tokens = None
    if isinstance(prompt, list) and prompt and all(_is_int(t) for t in prompt):
        prompt, tokens = None, prompt  # token ids, as OpenAI's API allows (remote engines)
    elif not isinstance(prompt, str):
        raise RequestError("prompt must be a string or a list of token ids")
    return Job(model=body.get("model"), params=params, prompt=prompt, prompt_tokens=tokens,
               schema=schema_from(body.get("response_format")), max_tokens_given=given)  # fmt: skip


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _usage(outcome: Outcome) -> dict:
    stats = outcome.finished.stats if outcome.finished else None
    completion = stats.completion_tokens if stats else 0
    return {
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": outcome.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": stats.cached_tokens if stats else 0},
        **({"completion_tokens_details": {"reasoning_tokens": stats.reasoning_tokens}}
           if stats and stats.reasoning_tokens else {}),
    }  # fmt: skip


def _logprobs(tokens: list[Token]) -> dict | None:
    items = [lp for t in tokens for lp in (t.logprobs or [])]
    if not any(t.logprobs for t in tokens):
        return None
    return {"content": [
        {"token": lp.token, "logprob": lp.logprob, "bytes": list(lp.token.encode()),
         "top_logprobs": [{"token": t, "logprob": p, "bytes": list(t.encode())}
                          for t, p in lp.top]}
        for lp in items
    ]}  # fmt: skip


def _extras(outcome: Outcome) -> dict:
    return {"localllm": {"context": outcome.events}} if outcome.events else {}


@router.get("/v1/models")
async def list_models(request: Request):
    models = request.app.state.catalog.models()
    return {"object": "list", "data": [
        {"id": m["name"], "object": "model", "created": int(m["modified"]), "owned_by": "localllm"}
        for m in models
    ]}  # fmt: skip


@router.get("/v1/models/{name:path}")
async def get_model(name: str, request: Request):
    for m in request.app.state.catalog.models():
        if m["name"] == name:
            return {"id": name, "object": "model", "created": int(m["modified"]),
                    "owned_by": "localllm"}  # fmt: skip
    from localllm.errors import ModelNotFound

    raise ModelNotFound(f"model {name!r} is not on this server: `localllm list` shows them")


async def _start(request: Request, body: dict, job: Job, outcome: Outcome, cid: str, sse):
    """A StreamingResponse of sse(...) when the body asks to stream, else the answer's tokens.

    The first event is awaited before the 200 goes out, so an unknown model or an overflow
    is still an error response."""
    events = request.app.state.runner.run(job, outcome)
    if not body.get("stream"):
        return [e async for e in events if isinstance(e, Token)]
    usage = bool((body.get("stream_options") or {}).get("include_usage"))
    first = await anext(events)
    return StreamingResponse(sse(cid, first, events, outcome, usage),
                             media_type="text/event-stream")  # fmt: skip


@router.post("/v1/chat/completions")
async def chat_completions(request: Request):
    body = await read_json(request)
    outcome, cid = Outcome(), "chatcmpl-" + uuid.uuid4().hex
    tokens = await _start(request, body, _job(body, chat=True), outcome, cid, _chat_sse)
    if isinstance(tokens, StreamingResponse):
        return tokens
    text = "".join(t.text for t in tokens)
    message, finish = _chat_message(text, outcome)
    if outcome.reasoning_text:  # as llama-server and DeepSeek's API give it
        message["reasoning_content"] = outcome.reasoning_text
    choice = {"index": 0, "message": message, "logprobs": _logprobs(tokens),
              "finish_reason": finish}  # fmt: skip
    return {"id": cid, "object": "chat.completion", "created": outcome.created,
            "model": outcome.model, "choices": [choice], "usage": _usage(outcome),
            "system_fingerprint": "localllm", **_extras(outcome)}  # fmt: skip


def _chat_message(text: str, outcome: Outcome) -> tuple[dict, str]:
    finish = FINISH[outcome.finished.stats.stop_reason]
    if outcome.forced_tool and finish == "stop":
        call = parse_forced(text)
        return {"role": "assistant", "content": None,
                "tool_calls": [call.as_openai()]}, "tool_calls"  # fmt: skip
    content, calls = parse_tool_calls(text, outcome.functions)
    if calls:
        return {"role": "assistant", "content": content or None,
                "tool_calls": [c.as_openai() for c in calls]}, "tool_calls"  # fmt: skip
    return {"role": "assistant", "content": text}, finish


def _sse(data: dict) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


async def _chat_sse(cid, first, events, outcome: Outcome, include_usage: bool):
    head = {"id": cid, "object": "chat.completion.chunk", "created": outcome.created,
            "model": outcome.model, "system_fingerprint": "localllm"}  # fmt: skip
    holding = outcome.forced_tool or bool(outcome.functions)  # tool calls come whole, at the end
    yield _sse({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                     "logprobs": None, "finish_reason": None}]})  # fmt: skip
    text = []

    async def all_events():
        yield first
        async for event in events:
            yield event

    async for event in all_events():
        if isinstance(event, Reasoning):
            delta = {"reasoning_content": event.text}
            yield _sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None,
                                             "logprobs": None}]})  # fmt: skip
        elif isinstance(event, Token):
            text.append(event.text)
            if not holding:
                delta = {"content": event.text}
                yield _sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None,
                                                 "logprobs": _logprobs([event])}]})  # fmt: skip
        elif isinstance(event, Finished):
            message, finish = _chat_message("".join(text), outcome)
            delta = {}
            if holding and message.get("tool_calls"):
                delta = {"tool_calls": [{"index": i, **c}
                                        for i, c in enumerate(message["tool_calls"])]}  # fmt: skip
            elif holding:
                delta = {"content": message["content"]}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            final = {**head, "choices": [choice], **_extras(outcome)}
            yield _sse(final)
            if include_usage:
                yield _sse({**head, "choices": [], "usage": _usage(outcome)})
    yield b"data: [DONE]\n\n"


@router.post("/v1/completions")
async def completions(request: Request):
    body = await read_json(request)
    outcome, cid = Outcome(), "cmpl-" + uuid.uuid4().hex
    tokens = await _start(request, body, _job(body, chat=False), outcome, cid, _completion_sse)
    if isinstance(tokens, StreamingResponse):
        return tokens
    choice = {"index": 0, "text": "".join(t.text for t in tokens),
              "logprobs": _completion_logprobs(tokens),
              "finish_reason": FINISH[outcome.finished.stats.stop_reason]}  # fmt: skip
    return {"id": cid, "object": "text_completion", "created": outcome.created,
            "model": outcome.model, "choices": [choice], "usage": _usage(outcome)}  # fmt: skip


def _completion_logprobs(tokens: list[Token]) -> dict | None:
    items = [lp for t in tokens for lp in (t.logprobs or [])]
    if not items:
        return None
    return {"tokens": [lp.token for lp in items],
            "token_logprobs": [lp.logprob for lp in items],
            "top_logprobs": [dict(lp.top) for lp in items]}  # fmt: skip


async def _completion_sse(cid, first, events, outcome: Outcome, include_usage: bool):
    head = {"id": cid, "object": "text_completion", "created": outcome.created,
            "model": outcome.model}  # fmt: skip
    event = first
    while True:
        if isinstance(event, Token):
            choice = {"index": 0, "text": event.text, "finish_reason": None,
                      "logprobs": _completion_logprobs([event])}  # fmt: skip
            yield _sse({**head, "choices": [choice]})
        elif isinstance(event, Finished):
            finish = FINISH[event.stats.stop_reason]
            yield _sse({**head, "choices": [{"index": 0, "text": "", "finish_reason": finish,
                                             "logprobs": None}]})  # fmt: skip
            if include_usage:
                yield _sse({**head, "choices": [], "usage": _usage(outcome)})
            break
        try:
            event = await anext(events)
        except StopAsyncIteration:
            break
    yield b"data: [DONE]\n\n"


@router.post("/v1/embeddings")
async def embeddings(request: Request):
    body = await read_json(request)
    inputs = embedding_inputs(body)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise RequestError("encoding_format must be float or base64")
    vectors, used, name = await request.app.state.embed(body.get("model"), inputs)
    if encoding == "base64":  # what the openai client asks for: little-endian float32
        vectors = [base64.b64encode(np.asarray(v, "<f4").tobytes()).decode() for v in vectors]
    return {"object": "list", "model": name, "data": [
        {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
    ], "usage": {"prompt_tokens": used, "total_tokens": used}}  # fmt: skip
