"""JSON schema -> GBNF grammar, so structured output cannot break.

The conversion is llama-cpp-python's (a port of llama.cpp's own converter). It
silently ignores some keywords; an answer generated under such a grammar could
break the schema, so those are refused here by name instead (the server turns
that into a 400). Objects without `additionalProperties` get `false`, as
OpenAI's strict mode does: the answer then holds exactly the declared keys,
which still validates against the schema as given.
"""

from __future__ import annotations

import copy
import json

from localllm.errors import GrammarError

# Keywords that constrain a value but that the converter would drop.
UNSUPPORTED = (
    "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies",
    "patternProperties", "propertyNames", "minProperties", "maxProperties", "uniqueItems",
    "contains", "minContains", "maxContains", "unevaluatedProperties", "unevaluatedItems",
    "multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
)  # fmt: skip
FORMATS = ("date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5")
TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
# Sub-schemas keyed by name (properties, $defs) or listed (anyOf, prefixItems).
_NAMED = ("properties", "$defs", "definitions")
_LISTED = ("anyOf", "oneOf", "allOf", "prefixItems")

# llama-cpp-python's converter lets a string hold raw control characters (a newline, a tab),
# which no JSON parser accepts; llama.cpp's own converter excludes them, as JSON does.
_LOOSE_CHAR = 'char ::= [^"\\\\]'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'

# Any JSON value at all (response_format json_object, Ollama's format "json").
ANY_JSON_OBJECT = {"type": "object"}


def schema_to_grammar(schema: object) -> str:
    """The GBNF whose sentences are the JSON documents schema accepts; GrammarError if not."""
    if not isinstance(schema, dict):
        raise GrammarError('a JSON schema must be an object, e.g. {"type": "object", ...}')
    schema = copy.deepcopy(schema)
    _check(schema, "#")
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except (ValueError, KeyError, AssertionError, RecursionError, TypeError) as exc:
        raise GrammarError(f"the JSON schema cannot be turned into a grammar: {exc}") from None
    return "\n".join(line.replace(_LOOSE_CHAR, _JSON_CHAR, 1) if line.startswith(_LOOSE_CHAR)
                     else line for line in grammar.splitlines())  # fmt: skip


def _check(node: object, where: str) -> None:
    """Refuse what the converter would ignore; close objects; walk every sub-schema."""
    if isinstance(node, bool):
        return
    if not isinstance(node, dict):
        raise GrammarError(f"{where}: a sub-schema must be an object, not {node!r}")
    for key in UNSUPPORTED:
        if key in node:
            raise GrammarError(
                f"{where}: the JSON schema keyword {key!r} cannot be enforced by the grammar; "
                "remove it (and check the value yourself)"
            )
    kinds = node.get("type")
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind is not None and kind not in TYPES:
            raise GrammarError(f"{where}: unknown type {kind!r}: use one of {', '.join(TYPES)}")
    fmt = node.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise GrammarError(
            f"{where}: string format {fmt!r} cannot be enforced by the grammar (supported: "
            f"{', '.join(FORMATS)}); use a pattern instead"
        )
    if "allOf" in node and kinds not in (None, "object"):
        raise GrammarError(f"{where}: allOf is supported for objects only")
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    for key in _NAMED:
        for name, sub in (node.get(key) or {}).items():
            _check(sub, f"{where}/{key}/{name}")
    for key in _LISTED:
        for i, sub in enumerate(node.get(key) or []):
            _check(sub, f"{where}/{key}/{i}")
    for key in ("items", "additionalProperties"):
        sub = node.get(key)
        if isinstance(sub, list):
            for i, item in enumerate(sub):
                _check(item, f"{where}/{key}/{i}")
        elif isinstance(sub, dict):
            _check(sub, f"{where}/{key}")
