"""llama-server's utility routes: /tokenize, /detokenize, /apply-template, /props, /health.

Remote engines (another localllm, llama-server) count tokens exactly with these.
Each takes an optional "model" (the server's first model when left out).
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request

from localllm.chat.prompting import normalize_messages
from localllm.errors import RequestError
from localllm.serve.openai_api import read_json

router = APIRouter()


async def _with_model(request: Request, body: dict, work):
    runner = request.app.state.runner
    loaded = await runner.acquire(body.get("model") or request.app.state.default_model)
    try:
        return await anyio.to_thread.run_sync(work, loaded.engine), loaded.name
    finally:
        request.app.state.host.release(loaded)


@router.post("/tokenize")
async def tokenize(request: Request):
    body = await read_json(request)
    content = body.get("content")
    if not isinstance(content, str):
        raise RequestError("content must be a string")
    special = bool(body.get("add_special", False))
    pieces = bool(body.get("with_pieces", False))

    def work(engine):
        tokens = engine.tokenize(content, special=True, add_bos=special)
        if pieces:
            return [{"id": t, "piece": engine.detokenize([t])} for t in tokens]
        return tokens

    tokens, _ = await _with_model(request, body, work)
    return {"tokens": tokens}


@router.post("/detokenize")
async def detokenize(request: Request):
    body = await read_json(request)
    tokens = body.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        raise RequestError("tokens must be a list of integers")

    def work(engine):
        if any(t < 0 or t >= engine.n_vocab for t in tokens):
            raise RequestError(f"token ids must be between 0 and {engine.n_vocab - 1}")
        return engine.detokenize(tokens)

    content, _ = await _with_model(request, body, work)
    return {"content": content}


@router.post("/apply-template")
async def apply_template(request: Request):
    body = await read_json(request)
    messages = normalize_messages(body.get("messages"))
    prompt, _ = await _with_model(
        request, body, lambda engine: engine.render_chat(messages, tools=body.get("tools"))
    )
    return {"prompt": prompt}


@router.get("/props")
async def props(request: Request, model: str | None = None):
    """The window one request gets and the slots, as llama-server reports them (loads the
    model if it is not loaded: a client asks just before it sends work)."""

    def work(engine):
        return {"default_generation_settings": {"n_ctx": engine.n_ctx},
                "total_slots": getattr(engine, "parallel", 1),
                "chat_template": engine.info.chat_template or ""}  # fmt: skip

    facts, name = await _with_model(request, {"model": model}, work)
    return {**facts, "model_alias": name}


@router.get("/health")
async def health(request: Request):
    slots = {"slots_total": 0, "slots_processing": 0, "slots_idle": 0, "queued": 0,
             "requests": 0, "cancelled": 0, "rejected": 0}  # fmt: skip
    for m in request.app.state.host.loaded():
        state = m.engine.load_state() if hasattr(m.engine, "load_state") else {}
        for key, value in state.items():
            slots[key] = slots.get(key, 0) + value
    return {"status": "ok", **slots}
