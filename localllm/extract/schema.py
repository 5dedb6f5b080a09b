"""What extract asks for: the default entity schema, or the user's, made fit for extraction.

A user's schema is loaded, checked by the grammar converter (which names what it
cannot enforce), and relaxed in one way: every plain string may also be null and
no array has a minimum length, so "the text does not say" is always a valid
answer and a value dropped by the grounding check never breaks the schema.
Strings with an enum, a const or a format are categories or normalised values,
not quotes, so they are not looked for in the source ("unchecked").
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

from localllm.engine.grammar import schema_to_grammar
from localllm.errors import GrammarError

DEFAULT_ENTITIES = ("person", "org", "place", "date", "money")
ENTITY_HINTS = {
    "person": "people's names",
    "org": "companies, institutions and other organisations",
    "place": "countries, cities, regions and addresses",
    "date": "dates and times, as written",
    "money": "amounts of money with their currency, as written",
    "email": "e-mail addresses",
    "phone": "telephone numbers",
    "product": "products and brands",
    "event": "named events",
    "law": "laws, regulations and articles",
}  # fmt: skip
MAX_VALUE_CHARS = 80  # longer is a sentence, not a name


def entity_schema(types: tuple[str, ...], max_items: int) -> dict:
    return {
        "type": "object",
        "properties": {
            "entities": {
                "type": "array",
                "maxItems": max_items,
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "minLength": 1, "maxLength": MAX_VALUE_CHARS},
                        "type": {"enum": list(types)},
                    },
                    "required": ["text", "type"],
                },
            }
        },
        "required": ["entities"],
    }


def entity_types(spec: str | None) -> tuple[str, ...]:
    if not spec:
        return DEFAULT_ENTITIES
    types = tuple(dict.fromkeys(t.strip().lower() for t in spec.split(",") if t.strip()))
    bad = [t for t in types if not t.replace("_", "").replace("-", "").isalnum()]
    if not types or bad:
        raise GrammarError(f"--entities takes names such as {','.join(DEFAULT_ENTITIES)}"
                           f"{f' (not {bad[0]!r})' if bad else ''}")  # fmt: skip
    return types


def load_schema(path: Path) -> dict:
    try:
        schema = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise GrammarError(f"cannot read the schema {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise GrammarError(f"{path} is not JSON: {exc}") from None
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise GrammarError(
            f'{path}: the schema must describe an object ({{"type": "object", '
            '"properties": {...}}), so results from several parts can merge'
        )
    schema_to_grammar(schema)  # names what the grammar cannot enforce
    return schema


def relaxed(schema: dict) -> dict:
    """The schema with plain strings nullable and no minimum array lengths."""
    schema = copy.deepcopy(schema)
    return _relax(schema)


def _relax(node):
    if not isinstance(node, dict):
        return node
    for key in ("properties", "$defs", "definitions"):
        for name, sub in (node.get(key) or {}).items():
            node[key][name] = _relax(sub)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if key in node:
            node[key] = [_relax(sub) for sub in node[key]]
    if isinstance(node.get("items"), dict):
        node["items"] = _relax(node["items"])
    node.pop("minItems", None)
    if _plain_string(node):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def _plain_string(node: dict) -> bool:
    kind = node.get("type")
    is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
    return is_string and not {"enum", "const", "format"} & node.keys()


def scalars(value, node: dict, root: dict, path: str = "") -> Iterator[tuple[str, object, bool]]:
    """(JSON pointer, value, groundable) for every string and number in value, read against
    its schema. Numbers are never groundable: "2,5 millones" may rightly be 2500000."""
    node = _resolve(node, root)
    if isinstance(value, str):
        yield path, value, _plain_string(node) or _nullable_plain(node, root)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path, value, False
    elif isinstance(value, dict):
        props = node.get("properties") or {}
        for key, item in value.items():
            yield from scalars(item, _branch(props.get(key, {}), item, root), root,
                               f"{path}/{_escape(key)}")  # fmt: skip
    elif isinstance(value, list):
        items = node.get("items") if isinstance(node.get("items"), dict) else {}
        for i, item in enumerate(value):
            yield from scalars(item, _branch(items, item, root), root, f"{path}/{i}")


def _nullable_plain(node: dict, root: dict) -> bool:
    return any(_plain_string(_resolve(b, root)) for b in node.get("anyOf", []))


def _branch(node: dict, value, root: dict) -> dict:
    """The anyOf/oneOf branch that describes value (by its JSON type), else node itself."""
    node = _resolve(node, root)
    for key in ("anyOf", "oneOf"):
        for sub in node.get(key, []):
            sub = _resolve(sub, root)
            if _type_fits(sub, value):
                return sub
    return node


def _type_fits(node: dict, value) -> bool:
    kind = node.get("type")
    python = {"string": str, "object": dict, "array": list, "boolean": bool, "null": type(None),
              "number": (int, float), "integer": int}  # fmt: skip
    if kind is None:
        return "enum" in node or "const" in node
    kinds = kind if isinstance(kind, list) else [kind]
    return any(isinstance(value, python.get(k, ())) for k in kinds)


def _resolve(node: dict, root: dict) -> dict:
    ref = node.get("$ref") if isinstance(node, dict) else None
    if not ref or not ref.startswith("#/"):
        return node if isinstance(node, dict) else {}
    target = root
    for part in ref[2:].split("/"):
        target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
    return target


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
