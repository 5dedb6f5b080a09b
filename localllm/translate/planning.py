"""How a translation is cut up: units (a segment or a piece of a long one), chunks of whole
paragraphs within a token budget, runs of chunks for --parallel, and the segments put back
together from their units."""

from __future__ import annotations

from dataclasses import dataclass

from localllm.translate.layout import Layout
from localllm.translate.protect import Masked

MAX_CHUNK_UNITS = 16  # paragraphs per call: more and the answer's shape breaks more often


@dataclass
class Unit:
    """What one paragraph of a call holds: a segment, or a piece of a long one."""

    segment: int
    paragraph: int
    source: str
    masked: Masked
    tokens: int
    translation: str | None = None
    problem: str | None = None
    tries: int = 0


def chunks_of(units: list[Unit], budget: int):
    """Consecutive units within budget, cut between paragraphs wherever one fits whole."""
    chunk: list[Unit] = []
    size = 0
    for paragraph in by_paragraph(units):
        whole = sum(u.tokens for u in paragraph)
        if chunk and (size + whole > budget or len(chunk) + len(paragraph) > MAX_CHUNK_UNITS):
            yield chunk
            chunk, size = [], 0
        for unit in paragraph:  # a paragraph larger than a chunk is cut between its units
            if chunk and (size + unit.tokens > budget or len(chunk) >= MAX_CHUNK_UNITS):
                yield chunk
                chunk, size = [], 0
            chunk.append(unit)
            size += unit.tokens
    if chunk:
        yield chunk


def runs_of(chunks: list[list[Unit]], parallel: int) -> list[list[list[Unit]]]:
    """The chunks in at most `parallel` runs of consecutive ones, of near-equal length.

    Only a run's first chunk goes without the previous chunk as context."""
    count = max(1, min(parallel, len(chunks)))
    size, extra = divmod(len(chunks), count)
    runs, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        runs.append(chunks[start:end])
        start = end
    return runs


def by_paragraph(units: list[Unit]):
    group: list[Unit] = []
    for unit in units:
        if group and unit.paragraph != group[-1].paragraph:
            yield group
            group = []
        group.append(unit)
    if group:
        yield group


def segment_texts(layout: Layout, units: list[Unit]) -> list[str]:
    """Each segment's translation (its pieces joined), or its source where a piece failed."""
    pieces: list[list[str]] = [[] for _ in layout.segments]
    for unit in units:
        pieces[unit.segment].append(unit.translation if unit.translation is not None
                                    else unit.source)  # fmt: skip
    return [" ".join(p) for p in pieces]
