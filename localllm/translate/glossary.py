"""Glossaries: source term -> required translation, from a TSV or a TOML file.

TSV: one `term<TAB>translation` per line; `#` starts a comment. TOML: either a
top-level table of `"term" = "translation"` or the same under `[terms]`. Terms
match whole words, ignoring case and accents, so "Ayuntamiento" in the glossary
finds "ayuntamiento" in the text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import tomllib

from localllm.errors import DocumentError

MAX_TERMS = 500  # a longer glossary would crowd the text out of every prompt


@dataclass(frozen=True)
class Glossary:
    terms: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.terms)

    def relevant(self, source: str) -> list[tuple[str, str]]:
        """The entries whose term occurs in source."""
        folded = fold(source)
        return [(s, t) for s, t in self.terms if _has_word(folded, fold(s))]

    def broken(self, source: str, translation: str) -> list[tuple[str, str]]:
        """Entries whose term is in source but whose translation is not in translation."""
        folded = fold(translation)
        return [(s, t) for s, t in self.relevant(source) if not _has_word(folded, fold(t))]


def fold(text: str) -> str:
    """Lower case without accents, for matching terms the way a reader would."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _has_word(text: str, term: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text) is not None


def load_glossary(path: Path) -> Glossary:
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError(f"cannot read the glossary {path}: {exc}") from None
    pairs = _toml_pairs(path, raw) if path.suffix.lower() == ".toml" else _tsv_pairs(path, raw)
    pairs = [(s.strip(), t.strip()) for s, t in pairs if s.strip() and t.strip()]
    if not pairs:
        raise DocumentError(f"the glossary {path} has no entries: write one `term<TAB>translation`"
                            " per line (TSV) or `\"term\" = \"translation\"` (TOML)")  # fmt: skip
    if len(pairs) > MAX_TERMS:
        raise DocumentError(f"the glossary {path} has {len(pairs)} entries; at most {MAX_TERMS} "
                            "fit beside the text: keep the terms this document needs")  # fmt: skip
    return Glossary(tuple(pairs))


def _tsv_pairs(path: Path, raw: str) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DocumentError(f"{path}:{number}: expected `term<TAB>translation`, found "
                                f"{len(fields)} tab-separated field(s)")  # fmt: skip
        pairs.append((fields[0], fields[1]))
    return pairs


def _toml_pairs(path: Path, raw: str) -> list[tuple[str, str]]:
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise DocumentError(f"{path} is not valid TOML: {exc}") from None
    table = data.get("terms", data)
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise DocumentError(f'{path}: every glossary entry must be `"term" = "translation"`, '
                            "at the top level or under [terms]")  # fmt: skip
    return list(table.items())
