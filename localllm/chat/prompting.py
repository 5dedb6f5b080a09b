"""Prompts from API requests: OpenAI/Ollama messages -> the model's tokens, fitted to
the context window by the chat module's policies.

By default an overflow is an error with the token counts (OpenAI's
`context_length_exceeded`): nothing is dropped unless the caller asks. With
policy "window" or "summary" the oldest whole turns are dropped or folded into
a summary, exactly as the chat app does, and every change is reported.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from localllm.chat.context import ContextEvent, ContextManager
from localllm.chat.conversation import ChatParams, Conversation, Message
from localllm.chat.tools import describe_tools, tool_functions
from localllm.errors import ContextOverflow, RequestError

ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass
class ApiPrompt:
    tokens: list[int]
    events: list[ContextEvent] = field(default_factory=list)


def _text(content: object, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text":
                raise RequestError(f"{where}: content parts of type {kind!r} are not supported "
                                   "(this server takes text only)")  # fmt: skip
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise RequestError(f"{where}: content must be a string or a list of text parts")


def _arguments(call: dict) -> dict:
    """Tool-call arguments as the templates expect them: an object, not a JSON string."""
    fn = dict(call.get("function") or {})
    if isinstance(fn.get("arguments"), str):
        with contextlib.suppress(json.JSONDecodeError):
            fn["arguments"] = json.loads(fn["arguments"])
    return {**call, "function": fn}


def normalize_messages(messages: object) -> list[dict]:
    """Messages checked and flattened to role/content (and tool fields the templates read)."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise RequestError(f"messages[{i}]: role must be one of {', '.join(ROLES)}")
        role = "system" if m["role"] == "developer" else m["role"]
        item = {"role": role, "content": _text(m.get("content"), f"messages[{i}]")}
        if m.get("tool_calls"):
            item["tool_calls"] = [_arguments(c) for c in m["tool_calls"] if isinstance(c, dict)]
        for key in ("tool_call_id", "name"):
            if m.get(key) is not None:
                item[key] = m[key]
        out.append(item)
    return out


def build_prompt(
    engine, messages: list[dict], *, reserve: int, policy: str = "off", tools=None,
    fold: Callable[[str, list[dict]], str] | None = None, template_vars: dict | None = None,
) -> ApiPrompt:  # fmt: skip
    """Tokens for answering messages with `reserve` tokens of room; ContextOverflow if none."""
    events = []
    if tools and engine.render_chat(messages, tools=tools) == engine.render_chat(messages):
        # The template drops tools: the model would never hear of them. Say so, and tell it.
        messages = describe_tools(messages, tool_functions(tools))
        tools = None
        said = "this model's chat template has no tool support: the tools were described in "
        events.append(ContextEvent("tools", 0, 0, said + "the system message"))
    extra = template_vars or {}
    tokens = engine.tokenize(engine.render_chat(messages, tools=tools or None, **extra))
    n_ctx = engine.n_ctx
    if len(tokens) + max(1, reserve) <= n_ctx:
        return ApiPrompt(tokens, events)
    plain = all(m["role"] in ("system", "user", "assistant") and "tool_calls" not in m
                for m in messages)  # fmt: skip
    if policy == "off" or tools or not plain or messages[-1]["role"] != "user":
        raise ContextOverflow(
            f"this model's context window is {n_ctx} tokens, but the messages are "
            f"{len(tokens)} tokens and {reserve} more were asked for the answer: shorten the "
            "messages or max_tokens, or ask for context_policy window or summary"
        )
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    conv = Conversation(model="", system_prompt=system,
                        params=ChatParams(max_tokens=reserve, policy=policy),
                        messages=[Message(m["role"], m["content"]) for m in messages
                                  if m["role"] != "system"])  # fmt: skip
    prepared = ContextManager(engine, fold=fold, template_vars=extra).prepare(conv)
    return ApiPrompt(prepared.tokens, [*events, *prepared.events])
