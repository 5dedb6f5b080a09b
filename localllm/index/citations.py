"""Checking an answer's citations: [n] must name a passage the model was given.

A citation to a passage that does not exist is removed as the answer streams (and
counted), so what the user reads only ever points at real passages; an answer left with
no citation at all is flagged, since nothing ties it to the documents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NUMBER = r"\s*\d+\s*(?:[-–]\s*\d+\s*)?"  # 3, or a range 2-4
_CITATION = re.compile(rf"\[({_NUMBER}(?:[,;]{_NUMBER})*)\]")
_OPEN_PREFIX = re.compile(r"\[[\d\s,;–-]*$")  # what may still become a citation
LONGEST_CITATION = 200  # characters held back waiting for a "]"
MOST_IN_RANGE = 50  # a range wider than this is not a citation the model meant


@dataclass
class CitationCheck:
    passages: int  # how many the model was given: valid numbers are 1..passages
    cited: list[int] = field(default_factory=list)  # valid numbers, in first-cited order
    removed: list[int] = field(default_factory=list)  # numbers that named no passage

    def clean(self, text: str) -> str:
        """text with every citation reduced to its valid numbers (or dropped)."""
        return _CITATION.sub(self._rewrite, text)

    def _rewrite(self, match: re.Match) -> str:
        numbers = []
        for part in re.split(r"[,;]", match.group(1)):
            ends = [int(n) for n in re.findall(r"\d+", part)]
            low, high = ends[0], ends[-1]
            numbers += range(low, high + 1) if 0 <= high - low <= MOST_IN_RANGE else ends
        valid = [n for n in numbers if 1 <= n <= self.passages]
        self.removed.extend(n for n in numbers if n not in valid)
        for n in valid:
            if n not in self.cited:
                self.cited.append(n)
        return "".join(f"[{n}]" for n in dict.fromkeys(valid))


class CitationFilter:
    """Cleans streamed text: holds back a possible citation until its "]" arrives."""

    def __init__(self, check: CitationCheck):
        self.check = check
        self._held = ""

    def feed(self, text: str) -> str:
        self._held += text
        open_at = self._held.rfind("[")
        if (
            open_at >= 0
            and _OPEN_PREFIX.match(self._held, open_at)
            and (len(self._held) - open_at <= LONGEST_CITATION)
        ):
            ready, self._held = self._held[:open_at], self._held[open_at:]
        else:
            ready, self._held = self._held, ""
        return self.check.clean(ready)

    def finish(self) -> str:
        rest, self._held = self._held, ""
        return self.check.clean(rest)
