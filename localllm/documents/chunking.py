"""Split text into chunks that fit a token budget exactly, at natural boundaries.

Paragraphs first, then sentences, then words, and only as a last resort raw
token slices; neighbouring chunks share a small overlap so a fact cut at a
boundary survives. Sizes are measured with the model's own tokenizer, and
each finished chunk is re-measured as a whole, so a chunk never exceeds its
budget. Text arrives as a stream of blocks and chunks leave one by one: memory
holds one chunk and one paragraph, whatever the document's size.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")
SENTENCE_END = re.compile(r"(?<=[.!?。！？…])[\"'”’»)\]]*\s+")
# Where a sentence may end a text: Latin stops before a space, CJK ones anywhere.
_SENTENCE_STOP = re.compile(r"[.!?…][\"'”’»)\]]*(?=\s)|[。！？][」』”’)\]]*")
MAX_PARAGRAPH_CHARS = 64 * 1024  # a "paragraph" with no blank line is split beyond this
JOIN = "\n\n"


def through_last_sentence(text: str) -> str:
    """text up to the end of its last whole sentence or line, for a reply cut off
    mid-sentence; all of it where it has neither (there is nothing whole to keep)."""
    text = text.rstrip()
    ends = [m.end() for m in _SENTENCE_STOP.finditer(text + " ")]
    ends += [m.start() for m in re.finditer(r"\n", text)]
    end = max(ends, default=0)
    return text[:end].rstrip() if end else text


def paragraphs(blocks: Iterator[str]) -> Iterator[str]:
    """Paragraphs from a stream of text blocks, never buffering more than one paragraph."""
    pending = ""
    for block in blocks:
        pending += block.replace("\r\n", "\n")
        parts = PARAGRAPH_BREAK.split(pending)
        pending = parts.pop()
        for part in parts:
            if part.strip():
                yield part.strip()
        while len(pending) > MAX_PARAGRAPH_CHARS:  # one endless line: cut at a space
            cut = pending.rfind(" ", 0, MAX_PARAGRAPH_CHARS)
            cut = cut if cut > 0 else MAX_PARAGRAPH_CHARS
            yield pending[:cut].strip()
            pending = pending[cut:]
    if pending.strip():
        yield pending.strip()


class Chunker:
    def __init__(
        self,
        tokenize: Callable[[str], list[int]],
        detokenize: Callable[[list[int]], str],
        chunk_tokens: int,
        overlap_tokens: int = 0,
    ):
        if chunk_tokens < 16:
            raise ValueError("chunks must hold at least 16 tokens")
        self.tokenize = tokenize
        self.detokenize = detokenize
        self.size = chunk_tokens
        self.overlap = min(overlap_tokens, chunk_tokens // 4)

    def count(self, text: str) -> int:
        return len(self.tokenize(text))

    def _pieces(self, text: str, level: int = 0) -> Iterator[tuple[str, int]]:
        """(piece, tokens) with every piece within the chunk size."""
        n = self.count(text)
        if n <= self.size:
            yield text, n
            return
        if level == 0:
            parts = SENTENCE_END.split(text)
        elif level == 1:
            parts = text.split()
        else:
            tokens = self.tokenize(text)
            for i in range(0, len(tokens), self.size // 2):
                piece = self.detokenize(tokens[i : i + self.size // 2])
                yield piece, self.count(piece)
            return
        if len(parts) == 1:
            yield from self._pieces(text, level + 1)
            return
        for part in parts:
            if part.strip():
                yield from self._pieces(part.strip(), level + 1)

    def chunks(self, blocks: Iterator[str]) -> Iterator[str]:
        current: list[Piece] = []
        carried = 0  # how many pieces of `current` repeat the previous chunk's end
        for paragraph in paragraphs(blocks):
            for i, (text, n) in enumerate(self._pieces(paragraph)):
                piece = Piece(text, n, JOIN if i == 0 else " ")
                if current and _size(current) + piece.cost > self.size:
                    if len(current) > carried:
                        chunk, overlap, moved = self._finish(current)
                        yield chunk
                        current, carried = overlap + moved, len(overlap)
                    if _size(current) + piece.cost > self.size:
                        current, carried = [], 0  # the overlap would crowd out new text
                current.append(piece)
        while len(current) > carried:
            chunk, overlap, moved = self._finish(current)
            yield chunk
            current, carried = overlap + moved, len(overlap)

    def _finish(self, pieces: list[Piece]) -> tuple[str, list[Piece], list[Piece]]:
        """Join pieces into a chunk that measures within size.

        Returns the chunk, the overlap to repeat at the start of the next one, and any
        pieces moved on because the joined text measured over the size.
        """
        pieces = list(pieces)
        moved: list[Piece] = []
        text = _join(pieces)
        while len(pieces) > 1 and self.count(text) > self.size:
            moved.insert(0, pieces.pop())  # joins can merge tokens: move the tail on
            text = _join(pieces)
        overlap: list[Piece] = []
        budget = self.overlap
        for piece in reversed(pieces):
            if piece.tokens > budget:
                break
            overlap.insert(0, piece)
            budget -= piece.tokens
        return text, overlap, moved


@dataclass(frozen=True)
class Piece:
    text: str
    tokens: int
    sep: str  # what joins it to the piece before: a paragraph break or a space

    @property
    def cost(self) -> int:
        return self.tokens + (1 if self.sep == JOIN else 0)


def _size(pieces: list[Piece]) -> int:
    return sum(p.cost for p in pieces)


def _join(pieces: list[Piece]) -> str:
    return "".join(p.sep + p.text for p in pieces).strip()


# -- spans: chunks that are exact slices of the text, for jobs that report offsets ----------


def spans(text: str, count: Callable[[str], int], size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive slices of text, each measuring at most size tokens.

    Cut between paragraphs where one fits whole, else at sentence ends, then at spaces,
    then anywhere. Whitespace between slices belongs to neither. Each slice is text[start:end]
    itself, so an offset found in a slice is an offset in the text."""
    start = end = None
    for p_start, p_end in _paragraph_spans(text):
        for s_start, s_end in _fitting(text, p_start, p_end, count, size):
            if start is not None and count(text[start:s_end]) <= size:
                end = s_end
                continue
            if start is not None:
                yield start, end
            start, end = s_start, s_end
    if start is not None:
        yield start, end


def _paragraph_spans(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    for brk in PARAGRAPH_BREAK.finditer(text):
        yield from _trimmed(text, pos, brk.start())
        pos = brk.end()
    yield from _trimmed(text, pos, len(text))


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        lead = len(piece) - len(piece.lstrip())
        yield start + lead, start + lead + len(stripped)


def _fitting(text: str, start: int, end: int, count, size: int, level: int = 0):
    """The slice [start, end) as pieces that each measure within size."""
    if count(text[start:end]) <= size:
        yield start, end
        return
    if level == 0:
        cuts = [m.end() for m in SENTENCE_END.finditer(text, start, end)]
    elif level == 1:
        cuts = [m.end() for m in re.finditer(r"\s+", text[start:end])]
        cuts = [start + c for c in cuts]
    else:  # no space to cut at: halve until it fits
        middle = (start + end) // 2
        yield from _fitting(text, start, middle, count, size, 2)
        yield from _fitting(text, middle, end, count, size, 2)
        return
    bounds = [start, *[c for c in cuts if start < c < end], end]
    if len(bounds) == 2:
        yield from _fitting(text, start, end, count, size, level + 1)
        return
    for a, b in itertools.pairwise(bounds):
        for t_start, t_end in _trimmed(text, a, b):
            yield from _fitting(text, t_start, t_end, count, size, level + 1)
