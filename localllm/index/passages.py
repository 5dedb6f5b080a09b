"""Cutting a document into passages: the units the index searches and `ask` cites.

A passage is whole paragraphs (short ones joined, up to TARGET characters) or, for a
paragraph longer than LONGEST, whole sentences; never a piece of a word, and never across
a PDF page, so every citation names one page. Offsets are into the document's visible
text (readers.pages joined), so `text[start:end]` is the passage.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

TARGET = 500  # characters a passage grows to by joining paragraphs (about 100 words)
LONGEST = 1000  # a paragraph longer than this is cut at sentence ends
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# After . ! ? … ; : and a space, or right after a full-width 。！？ (no spaces in CJK text)
_SENTENCE_END = re.compile(r"(?<=[.!?…;:])\s+(?=\S)|(?<=[。！？])\s*(?=\S)")


@dataclass(frozen=True)
class Passage:
    ordinal: int  # its place in the document, from 0
    page: int | None  # PDF page, from 1
    start: int  # character offsets into the document's visible text
    end: int
    text: str


def cut_passages(pages: list[tuple[int | None, str]]) -> list[Passage]:
    """The passages of a document given as (page, text) pieces, in reading order."""
    passages: list[Passage] = []
    offset = 0
    for page, text in pages:
        for start, end in _page_spans(text):
            passages.append(Passage(len(passages), page, offset + start, offset + end,
                                    text[start:end]))  # fmt: skip
        offset += len(text)
    return passages


def _page_spans(text: str) -> Iterator[tuple[int, int]]:
    group: tuple[int, int] | None = None
    for start, end in _units(text):
        if group is not None and end - group[0] <= TARGET:
            group = (group[0], end)
            continue
        if group is not None:
            yield group
        group = (start, end)
    if group is not None:
        yield group


def _units(text: str) -> Iterator[tuple[int, int]]:
    """Paragraph spans without their surrounding space; long ones as sentence runs."""
    start = 0
    for brk in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = brk.start() if brk else len(text)
        span = _stripped(text, start, end)
        if span is not None:
            if span[1] - span[0] > LONGEST:
                yield from _sentence_runs(text, *span)
            else:
                yield span
        if brk:
            start = brk.end()


def _sentence_runs(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Sentences of text[start:end] joined up to TARGET; a sentence with no end in sight
    (a table, a list without full stops) is cut at the last space before LONGEST."""
    run_start, last = start, start
    cuts = [m.start() for m in _SENTENCE_END.finditer(text, start, end)] + [end]
    for cut in cuts:
        while cut - run_start > LONGEST:
            if last > run_start:
                yield run_start, last
                run_start = _skip_space(text, last, end)
                continue
            space = _last_space(text, run_start + 1, run_start + LONGEST)
            hard = space if space > run_start else run_start + LONGEST
            yield run_start, hard
            run_start = last = _skip_space(text, hard, end)
        if cut - run_start > TARGET and last > run_start:
            yield run_start, last
            run_start = _skip_space(text, last, end)
        last = cut
    if end > run_start:
        yield run_start, end


def _last_space(text: str, start: int, end: int) -> int:
    """The last whitespace of any kind in text[start:end], or -1."""
    for at in range(min(end, len(text)) - 1, start - 1, -1):
        if text[at].isspace():
            return at
    return -1


def _skip_space(text: str, at: int, end: int) -> int:
    while at < end and text[at].isspace():
        at += 1
    return at


def _stripped(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None
