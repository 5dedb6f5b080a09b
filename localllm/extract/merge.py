"""Results of a document's parts made into one, with where each value was found.

Rules, in document order: list fields are concatenated, an item equal to one
already there (same JSON) adding only where it was found; any other field takes
the first part's non-null value, and later parts that say otherwise are counted
as conflicts (listed in the stats with the values they gave). Entities are one
per normalised text and type, with every mention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from localllm.extract.grounding import fold


@dataclass
class Found:
    path: str  # JSON pointer into the merged result
    value: str
    start: int
    end: int
    how: str

    def as_dict(self) -> dict:
        return {"path": self.path, "value": self.value, "start": self.start, "end": self.end,
                "match": self.how}  # fmt: skip


@dataclass
class PartResult:
    data: dict
    found: list[Found] = field(default_factory=list)  # paths into data


@dataclass
class Merged:
    data: dict = field(default_factory=dict)
    found: list[Found] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)


def merge(parts: list[PartResult]) -> Merged:
    merged = Merged()
    keys: dict[str, dict[str, int]] = {}  # list field -> item JSON -> index in the merged list
    for part in parts:
        for name, value in part.data.items():
            prefix = f"/{name}"
            mine = [f for f in part.found if f.path == prefix or f.path.startswith(prefix + "/")]
            if isinstance(value, list):
                _merge_list(merged, keys.setdefault(name, {}), name, value, mine)
            elif value is not None and merged.data.get(name) is None:
                merged.data[name] = value
                merged.found += mine
            elif value is not None and _canon(value) != _canon(merged.data[name]):
                _conflict(merged, prefix, value)
            elif value is not None:
                merged.found += _same_place(mine, prefix, prefix)
            else:
                merged.data.setdefault(name, None)
    return merged


def _merge_list(merged: Merged, seen: dict, name: str, items: list, found: list[Found]) -> None:
    target = merged.data.setdefault(name, [])
    for i, item in enumerate(items):
        key = _canon(item)
        index = seen.get(key)
        if index is None:
            index = seen[key] = len(target)
            target.append(item)
        merged.found += _same_place(found, f"/{name}/{i}", f"/{name}/{index}")


def _same_place(found: list[Found], old: str, new: str) -> list[Found]:
    return [
        Found(new + f.path[len(old):], f.value, f.start, f.end, f.how)
        for f in found if f.path == old or f.path.startswith(old + "/")
    ]  # fmt: skip


def _conflict(merged: Merged, path: str, value) -> None:
    for entry in merged.conflicts:
        if entry["path"] == path:
            entry["other_values"].append(value)
            return
    merged.conflicts.append({"path": path, "kept": merged.data[path[1:]], "other_values": [value]})


def _canon(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def merge_entities(parts: list[PartResult]) -> list[dict]:
    """One entry per entity (folded text and type): the first spelling seen, every mention."""
    entities: dict[tuple[str, str], dict] = {}
    for part in parts:
        places = {f.path: f for f in part.found}
        for i, entity in enumerate(part.data.get("entities") or []):
            where = places.get(f"/entities/{i}/text")
            if where is None:
                continue  # dropped by the grounding check
            key = (fold(entity["text"]), entity["type"])
            entry = entities.setdefault(key, {"text": entity["text"], "type": entity["type"],
                                              "mentions": []})  # fmt: skip
            mention = {"start": where.start, "end": where.end, "match": where.how}
            if mention not in entry["mentions"]:
                entry["mentions"].append(mention)
    for entry in entities.values():
        entry["mentions"].sort(key=lambda m: m["start"])
    return sorted(entities.values(), key=lambda e: e["mentions"][0]["start"])
