"""Is an extracted value in the source, and where? Exact, then folded, then fuzzy.

A model that invents an entity is worse than one that misses it, so every
extracted string is looked for in the text it came from: as written; then
ignoring case, accents and runs of whitespace ("folded"); then, for values of
at least FUZZY_MIN_CHARS, as the closest passage of about its length whose
similarity is at least FUZZY_THRESHOLD. Offsets always point into the original
text, whatever matched.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher

FUZZY_THRESHOLD = 0.85
FUZZY_MIN_CHARS = 6


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    how: str  # "exact" | "folded" | "fuzzy"
    score: float = 1.0


class FoldedText:
    """A text folded for matching, with a map from each folded character to the original."""

    def __init__(self, text: str):
        self.text = text
        chars: list[str] = []
        where: list[int] = []
        for i, ch in enumerate(text):
            if ch.isspace():
                if chars and chars[-1] == " ":
                    continue  # a run of whitespace is one space
                chars.append(" ")
                where.append(i)
                continue
            for out in _fold_char(ch):
                chars.append(out)
                where.append(i)
        self.folded = "".join(chars)
        self.where = where

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The original text's span for folded[start:end]."""
        return self.where[start], self.where[end - 1] + 1


def _fold_char(ch: str) -> str:
    decomposed = unicodedata.normalize("NFKD", ch.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold(text: str) -> str:
    return FoldedText(text).folded.strip()


def find(value: str, source: FoldedText) -> Match | None:
    """Where value is in source, or None if it is not there (it was invented)."""
    value = value.strip()
    if not value:
        return None
    at = source.text.find(value)
    if at >= 0:
        return Match(at, at + len(value), "exact")
    wanted = fold(value)
    if not wanted:
        return None
    at = source.folded.find(wanted)
    if at >= 0:
        start, end = source.original(at, at + len(wanted))
        return Match(start, end, "folded")
    if len(wanted) >= FUZZY_MIN_CHARS:
        return _fuzzy(wanted, source)
    return None


def _fuzzy(wanted: str, source: FoldedText) -> Match | None:
    """The passage most like wanted, if it is like enough: windows of its length around each
    place a long enough piece of it occurs."""
    folded, n = source.folded, len(wanted)
    best, best_at = 0.0, -1
    seeds = {wanted[i : i + 4] for i in range(0, max(1, n - 3), 2)}
    starts = set()
    for seed in seeds:
        at = folded.find(seed)
        while at >= 0 and len(starts) < 2000:
            offset = wanted.find(seed)
            starts.add(max(0, at - offset))
            at = folded.find(seed, at + 1)
    for start in starts:
        for length in (n - 1, n, n + 1):
            window = folded[start : start + length]
            score = SequenceMatcher(None, wanted, window, autojunk=False).ratio()
            if score > best:
                best, best_at, best_len = score, start, len(window)
    if best < FUZZY_THRESHOLD or best_at < 0:
        return None
    start, end = source.original(best_at, best_at + best_len)
    return Match(start, end, "fuzzy", round(best, 3))
