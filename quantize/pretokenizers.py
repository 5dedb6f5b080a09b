"""Which pre-tokenizer name llama.cpp expects for a tokenizer.json.

llama.cpp splits text before BPE with a regex chosen by the GGUF key
tokenizer.ggml.pre. The right name follows from the tokenizer's
pre_tokenizer section: we recognise the common families by their structure
and regex, and give the exporter the section to write for each name.
"""

from __future__ import annotations

from typing import Any

DIGITS_THEN_BYTES = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ],
}
PLAIN_BYTES = {
    "type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True
}  # fmt: skip
CONTRACTIONS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
WORDS = r"[^\r\n\p{L}\p{N}]?\p{L}+"
TAIL = r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
SINGLE_DIGIT_REGEX = rf"{CONTRACTIONS}|{WORDS}|\p{{N}}|{TAIL}"
TRIPLE_DIGIT_REGEX = rf"{CONTRACTIONS}|{WORDS}|\p{{N}}{{1,3}}|{TAIL}"


def _split_then_bytes(regex: str) -> dict:
    return {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False},
        ],
    }


# GGUF pre-tokenizer name -> the tokenizer.json section the exporter writes.
SECTIONS = {
    "smollm": DIGITS_THEN_BYTES,
    "gpt-2": PLAIN_BYTES,
    "qwen2": _split_then_bytes(SINGLE_DIGIT_REGEX),
    "llama-bpe": _split_then_bytes(TRIPLE_DIGIT_REGEX),
}


def _steps(section: dict | None) -> list[dict]:
    if not section:
        return []
    if section.get("type") == "Sequence":
        return list(section.get("pretokenizers") or [])
    return [section]


def _regex(step: dict) -> str:
    pattern = step.get("pattern") or {}
    return pattern.get("Regex") or pattern.get("String") or ""


def pre_tokenizer_name(section: dict | None, architecture: str) -> str | None:
    """The llama.cpp name for a pre_tokenizer section, or None when unrecognised."""
    steps = _steps(section)
    kinds = [s.get("type") for s in steps]
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Split", "ByteLevel"]:
        regex = _regex(steps[0])
        if r"\p{N}{1,3}" in regex:
            return "llama-bpe"
        if r"\p{N}|" in regex and WORDS in regex:
            return "qwen2"
    return {"Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen2"}.get(architecture)


def section_for(name: str) -> dict[str, Any]:
    if name not in SECTIONS:
        raise ValueError(f"no tokenizer.json pre_tokenizer known for {name!r}")
    return SECTIONS[name]
