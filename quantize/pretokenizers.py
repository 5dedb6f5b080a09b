"""Which pre-tokenizer name llama.cpp expects for a tokenizer.json.

llama.cpp splits text before BPE with a regex chosen by the GGUF key
tokenizer.ggml.pre. We find the name as llama.cpp's convert_hf_to_gguf.py
does: encode its probe text with the tokenizer and look the sha256 of the
token ids up in its table, so two files that tokenize alike get the same name
however their pre_tokenizer section is written. Only for a tokenizer that
table does not know do we fall back to recognising the section's structure.
The exporter gets the section to write for each name.
"""

from __future__ import annotations

import hashlib
import warnings
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

# llama.cpp's probe (get_vocab_base_pre in convert_hf_to_gguf.py): whitespace runs, emoji,
# digit runs, several scripts and contractions, where pre-tokenizers split differently.
# The hashes depend on every character, so it is spelled in escapes and checked by a test.
CHKTXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\U0001f680 (normal) "
    "\U0001f636\u200d\U0001f32b\ufe0f (multiple emojis concatenated) \u2705 "
    "\U0001f999\U0001f999 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "\u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f\u17a2\u17b6\u1785"
    "\U0001f601 ?\u6211\u60f3\u5728apple\u5de5\u4f5c1314151\u5929\uff5e ------======= "
    "\u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438 "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not "
    "sure I'll make it, 'D you like some tea? We'Ve a'lL"
)

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


@cache
def probe_hashes() -> dict[str, str]:
    """sha256 of the probe's token ids -> llama.cpp name, from the reference's table."""
    text = resources.files("quantize").joinpath("data/pre_tokenizer_hashes.txt").read_text("utf-8")
    table = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split()[:2]
            table[digest] = name  # a hash listed twice: the later wins, as in the reference
    return table


def probe_hash(tokenizer_file: Path) -> str | None:
    """The reference's fingerprint of a tokenizer; None when `tokenizers` cannot load the file."""
    from tokenizers import Tokenizer  # only byte-level BPE vocabularies need it

    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    except Exception:  # tokenizers raises bare Exceptions for files it cannot parse
        return None
    # AutoTokenizer.encode, which the reference hashes, adds the special tokens the
    # post-processor names (Llama 3's BOS); Tokenizer.encode does the same by default
    ids = tokenizer.encode(CHKTXT).ids
    return hashlib.sha256(str(ids).encode()).hexdigest()


def identify(tokenizer_file: Path, section: dict | None, architecture: str) -> str | None:
    """The llama.cpp name for tokenizer.json: by probe hash, else (warning) by structure."""
    digest = probe_hash(tokenizer_file)
    if digest in probe_hashes():
        return probe_hashes()[digest]
    name = pre_tokenizer_name(section, architecture)
    why = f"probe hash {digest}" if digest else "the tokenizers library cannot read the file"
    chosen = f"chose {name!r} from its structure" if name else "using llama.cpp's default"
    warnings.warn(
        f"llama.cpp does not know this tokenizer.json's pre-tokenizer ({why}); {chosen}, "
        "which may split text differently from the original",
        stacklevel=3,
    )
    return name
