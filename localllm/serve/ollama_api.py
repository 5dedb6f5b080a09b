"""Ollama-compatible routes: /api/chat, /api/generate (NDJSON streaming), /api/tags,
/api/show, /api/ps, /api/embed, /api/embeddings, /api/version and /api/pull.

Durations are nanoseconds and errors are {"error": "..."}, as Ollama sends them.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from localllm import __version__
from localllm.engine.base import Finished, Reasoning, SamplingParams, Token
from localllm.errors import RequestError
from localllm.serve.openai_api import embedding_inputs, read_json, think_from
from localllm.serve.runner import Job, Outcome, json_mode_schema

router = APIRouter()

OLLAMA_VERSION = "0.12.0"  # the API level we follow; clients check it for features
DONE_REASON = {"eos": "stop", "stop": "stop", "length": "length", "cancelled": "stop"}
_DURATION = re.compile(r"^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$")


def parse_keep_alive(value) -> float | str | None:
    """Ollama's keep_alive ("5m", "1h", 300, 0, -1) -> seconds, None (forever), or default."""
    if value is None or value == "":
        return "default"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value).strip())
        if not m:
            raise RequestError(f"keep_alive {value!r} is not a duration such as 5m, 30s or -1")
        scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
        seconds = float(m.group(1)) * scale
    return None if seconds < 0 else seconds


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _sampling(options: dict, body: dict) -> tuple[SamplingParams, bool, int | None]:
    if not isinstance(options, dict):
        raise RequestError("options must be an object")

    def num(key, default, kind=float):
        value = options.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(f"options.{key} must be a number")
        return kind(value)

    predict = num("num_predict", None, int)
    given = predict is not None and predict >= 0
    stop = options.get("stop") or ()
    if isinstance(stop, str):
        stop = [stop]
    params = SamplingParams(
        max_tokens=predict if given and predict > 0 else 512,
        temperature=num("temperature", 0.8), top_k=num("top_k", 40, int),
        top_p=num("top_p", 0.9), min_p=num("min_p", 0.0),
        repeat_penalty=num("repeat_penalty", 1.0), seed=num("seed", None, int),
        stop=tuple(str(s) for s in stop if s),
        logprobs=(num("top_logprobs", 0, int) if body.get("logprobs") else None),
    )  # fmt: skip
    return params, given, num("num_ctx", None, int)


def _schema(fmt) -> dict | None:
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return json_mode_schema()
    if isinstance(fmt, dict):
        return fmt
    raise RequestError('format must be "json" or a JSON schema object')


def _job(body: dict, *, chat: bool) -> Job:
    params, given, num_ctx = _sampling(body.get("options") or {}, body)
    common = dict(model=body.get("model"), params=params, schema=_schema(body.get("format")),
                  n_ctx=num_ctx, keep_alive=parse_keep_alive(body.get("keep_alive")),
                  max_tokens_given=given,
                  policy=(body.get("options") or {}).get("context_policy") or "",
                  think=think_from(body))  # fmt: skip
    if chat:
        return Job(messages=body.get("messages"), tools=body.get("tools"), **common)
    prompt = body.get("prompt") or ""
    if body.get("raw"):
        return Job(prompt=prompt, **common)
    messages = [{"role": "system", "content": body["system"]}] if body.get("system") else []
    return Job(messages=[*messages, {"role": "user", "content": prompt}], **common)


def _timings(outcome: Outcome) -> dict:
    stats = outcome.finished.stats
    total = time.perf_counter() - outcome.started
    return {
        "done_reason": DONE_REASON[stats.stop_reason],
        "total_duration": int(total * 1e9), "load_duration": int(outcome.load_s * 1e9),
        "prompt_eval_count": outcome.prompt_tokens,
        "prompt_eval_duration": int(stats.prefill_s * 1e9),
        "eval_count": stats.completion_tokens, "eval_duration": int(stats.decode_s * 1e9),
    }  # fmt: skip


def _ndjson(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode() + b"\n"


async def _generation(request: Request, body: dict, *, chat: bool):
    job = _job(body, chat=chat)
    if chat and not job.messages:
        # Ollama loads the model on an empty chat: answer done, load it.
        loaded = await request.app.state.runner.acquire(job.model, keep_alive=job.keep_alive)
        request.app.state.host.release(loaded)
        return {"model": loaded.name, "created_at": _now(), "done": True, "done_reason": "load",
                "message": {"role": "assistant", "content": ""}}  # fmt: skip
    outcome = Outcome()
    events = request.app.state.runner.run(job, outcome)
    first = await anext(events)
    if body.get("stream", True):
        return StreamingResponse(_stream(first, events, outcome, chat),
                                 media_type="application/x-ndjson")  # fmt: skip
    text = first.text if isinstance(first, Token) else ""
    async for event in events:
        if isinstance(event, Token):
            text += event.text
    return _final(outcome, chat, text, outcome.reasoning_text or "")


def _piece(outcome: Outcome, chat: bool, text: str, done: bool, thinking: str = "") -> dict:
    head = {"model": outcome.model, "created_at": _now(), "done": done}
    said = {"thinking": thinking} if thinking else {}  # Ollama's field for reasoning
    if chat:
        return {**head, "message": {"role": "assistant", "content": text, **said}}
    return {**head, "response": text, **said}


def _final(outcome: Outcome, chat: bool, text: str, thinking: str = "") -> dict:
    out = {**_piece(outcome, chat, text, True, thinking), **_timings(outcome)}
    if chat and outcome.functions:
        from localllm.chat.tools import parse_tool_calls

        content, calls = parse_tool_calls(text, outcome.functions)
        if calls:
            wire = [{"function": {"name": c.name, "arguments": c.arguments}} for c in calls]
            out["message"] = {"role": "assistant", "content": content, "tool_calls": wire}
    if not chat:
        out["context"] = outcome.prompt_token_ids
    if outcome.events:
        out["localllm"] = {"context": outcome.events}
    return out


async def _stream(first, events, outcome: Outcome, chat: bool):
    event, text = first, ""
    while True:
        if isinstance(event, Reasoning):
            yield _ndjson(_piece(outcome, chat, "", False, event.text))
        elif isinstance(event, Token):
            text += event.text
            if not (chat and outcome.functions):  # tool calls come whole, at the end
                yield _ndjson(_piece(outcome, chat, event.text, False))
        elif isinstance(event, Finished):
            final = _final(outcome, chat, text if chat and outcome.functions else "")
            yield _ndjson(final)
            return
        try:
            event = await anext(events)
        except StopAsyncIteration:
            return


@router.post("/api/chat")
async def chat(request: Request):
    return await _generation(request, await read_json(request), chat=True)


@router.post("/api/generate")
async def generate(request: Request):
    return await _generation(request, await read_json(request), chat=False)


def _details(m: dict) -> dict:
    return {"parent_model": "", "format": "gguf", "family": m["family"],
            "families": [m["family"]], "parameter_size": m["parameter_size"],
            "quantization_level": m["quant"]}  # fmt: skip


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


@router.get("/api/tags")
async def tags(request: Request):
    return {"models": [
        {"name": m["name"], "model": m["name"], "modified_at": _iso(m["modified"]),
         "size": m["size"], "digest": m["digest"], "details": _details(m)}
        for m in request.app.state.catalog.models()
    ]}  # fmt: skip


@router.post("/api/show")
async def show(request: Request):
    body = await read_json(request)
    name = body.get("model") or body.get("name")
    m = await anyio.to_thread.run_sync(request.app.state.catalog.describe, name)
    return {"modified_at": _iso(m["modified"]), "template": m["template"],
            "modelfile": f"FROM {m['path']}\n", "license": m["license"], "details": _details(m),
            "model_info": m["model_info"], "parameters": "",
            "capabilities": m["capabilities"]}  # fmt: skip


@router.get("/api/ps")
async def ps(request: Request):
    return {"models": request.app.state.catalog.running()}


@router.post("/api/embed")
async def embed(request: Request):
    body = await read_json(request)
    inputs = embedding_inputs(body)
    started = time.perf_counter()
    vectors, used, name = await request.app.state.embed(body.get("model"), inputs)
    return {"model": name, "embeddings": vectors, "prompt_eval_count": used,
            "total_duration": int((time.perf_counter() - started) * 1e9)}  # fmt: skip


@router.post("/api/embeddings")
async def embeddings_legacy(request: Request):
    body = await read_json(request)
    vectors, _, _ = await request.app.state.embed(body.get("model"), [str(body.get("prompt", ""))])
    return {"embedding": vectors[0]}


@router.get("/api/version")
async def version():
    return {"version": OLLAMA_VERSION, "localllm": __version__}


@router.post("/api/pull")
async def pull(request: Request):
    body = await read_json(request)
    name = body.get("model") or body.get("name")
    if not request.app.state.allow_pull:
        from localllm.serve.errors import Forbidden

        raise Forbidden("pulling through the API is off: run `localllm pull MODEL` on the "
                        "server, or start it with --allow-pull")  # fmt: skip
    catalog = request.app.state.catalog
    if body.get("stream", True):
        return StreamingResponse((_ndjson(p) async for p in catalog.pull_stream(name)),
                                 media_type="application/x-ndjson")  # fmt: skip
    # Not streamed: a failure is an error response, as Ollama gives it.
    await anyio.to_thread.run_sync(catalog.pull_now, name)
    return {"status": "success"}
