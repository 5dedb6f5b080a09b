"""Tool calls: the grammar-forced form, and the formats model families write them in.

With tool_choice "required" or a named function the answer is forced by a
grammar into {"name": ..., "arguments": {...}} matching the tool's parameter
schema, so any model can call tools. With "auto" the model writes calls its
own way; we read the formats of the catalogue's families:

- `<tool_call>{"name": ..., "arguments": ...}</tool_call>` (Qwen, Hermes, SmolLM3)
- `[TOOL_CALLS][{"name": ..., "arguments": ...}]` (Mistral)
- `<|python_tag|>{...}` or a bare `{"name": ..., "parameters": ...}` (Llama 3.x)
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

from localllm.errors import GrammarError

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_MISTRAL = re.compile(r"\[TOOL_CALLS\]\s*(\[.*\]|\{.*\})", re.S)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict
    id: str = ""

    def as_openai(self) -> dict:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }


def _call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def tool_functions(tools: list[dict] | None) -> dict[str, dict]:
    """name -> the function's declaration, from OpenAI-style tools; GrammarError if malformed."""
    out = {}
    for i, tool in enumerate(tools or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise GrammarError(f"tools[{i}] needs {{\"type\": \"function\", \"function\": "
                               "{\"name\": ..., \"parameters\": {...}}}")  # fmt: skip
        out[fn["name"]] = fn
    return out


def forced_call_schema(functions: dict[str, dict], name: str | None) -> dict:
    """The JSON schema of one call: to function `name`, or to any of them when None."""

    def one(fn: dict) -> dict:
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        return {"type": "object", "properties": {"name": {"const": fn["name"]},
                "arguments": params}, "required": ["name", "arguments"]}  # fmt: skip

    if name is not None:
        if name not in functions:
            raise GrammarError(f"tool_choice names {name!r}, which is not among the tools")
        return one(functions[name])
    if not functions:
        raise GrammarError('tool_choice "required" needs at least one tool')
    return {"anyOf": [one(fn) for fn in functions.values()]}


def parse_forced(text: str) -> ToolCall:
    data = json.loads(text)
    return ToolCall(data["name"], data.get("arguments") or {}, _call_id())


def _as_call(data: object, functions: dict[str, dict]) -> ToolCall | None:
    if not isinstance(data, dict) or data.get("name") not in functions:
        return None
    args = data.get("arguments", data.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    return ToolCall(data["name"], args if isinstance(args, dict) else {}, _call_id())


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def parse_tool_calls(text: str, functions: dict[str, dict]) -> tuple[str, list[ToolCall]]:
    """(the text left for the user, the calls found) in a model's free-form answer."""
    if not functions:
        return text, []
    tagged = [_as_call(_loads(m), functions) for m in _TAGGED.findall(text)]
    if any(tagged):
        return _TAGGED.sub("", text).strip(), [c for c in tagged if c]
    mistral = _MISTRAL.search(text)
    if mistral:
        data = _loads(mistral.group(1))
        items = data if isinstance(data, list) else [data]
        calls = [c for c in (_as_call(d, functions) for d in items) if c]
        if calls:
            return text[: mistral.start()].strip(), calls
    bare = text.strip().removeprefix("<|python_tag|>").strip()
    if bare.startswith("{"):
        call = _as_call(_loads(bare), functions)
        if call:
            return "", [call]
    return text, []


TOOLS_INSTRUCTION = (
    "You can call these functions. To call one, answer with only a JSON object "
    '{"name": "<function name>", "arguments": {<arguments>}} and nothing else; otherwise '
    "answer normally.\nFunctions:\n"
)


def describe_tools(messages: list[dict], functions: dict[str, dict]) -> list[dict]:
    """messages with the functions described in the system message, for a chat template
    that has no tool support of its own (its answer is then read as a bare JSON call)."""
    listing = "\n".join(json.dumps(fn, ensure_ascii=False) for fn in functions.values())
    text = TOOLS_INSTRUCTION + listing
    if messages and messages[0]["role"] == "system":
        first = {**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]
