"""Tool-call formats of the catalogue's families, and the grammar-forced call's schema."""

from __future__ import annotations

import pytest

from localllm.chat.tools import forced_call_schema, parse_tool_calls, tool_functions
from localllm.errors import GrammarError

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]  # fmt: skip
FUNCTIONS = tool_functions(TOOLS)


@pytest.mark.parametrize("text", [
    'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    '\n</tool_call>',
    '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}}]',
    '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}',
    '{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}',
])  # fmt: skip
def test_each_family_format_is_read(text):
    _, (call,) = parse_tool_calls(text, FUNCTIONS)
    assert call.name == "get_weather" and call.arguments == {"city": "Oslo"}
    assert call.as_openai()["function"]["arguments"] == '{"city": "Oslo"}'


def test_text_and_unknown_functions_stay_text():
    for text in ("Paris is sunny.", '{"name": "launch_missiles", "arguments": {}}'):
        assert parse_tool_calls(text, FUNCTIONS) == (text, [])


def test_forced_schema_names_a_declared_tool_only():
    schema = forced_call_schema(FUNCTIONS, "get_weather")
    assert schema["properties"]["name"] == {"const": "get_weather"}
    with pytest.raises(GrammarError, match="not among the tools"):
        forced_call_schema(FUNCTIONS, "other")
    with pytest.raises(GrammarError, match="tools\\[0\\]"):
        tool_functions([{"type": "function"}])
