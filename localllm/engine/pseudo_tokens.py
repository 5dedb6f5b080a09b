"""A stand-in tokenizer for engines that cannot count tokens for us (Ollama, LM Studio).

Context fitting and chunking work on token lists: counting, slicing, turning a
slice back into text. An engine without a tokenize endpoint still needs all
three, so this one cuts text into short pieces (at most three letters, every
digit, every punctuation mark and every non-Latin character on its own), which
real tokenizers rarely cut finer: counts err on the high side, as a window
must. Each piece gets an id from a table that grows as text is seen, so any
slice of ids turns back into exactly its text.
"""

from __future__ import annotations

import re
import threading

# Latin letters three at a time; anything else one character at a time. Whitespace sticks
# to the piece that follows it, as in most BPE vocabularies.
_PIECE = re.compile(r"\s*(?:[A-Za-z\u00c0-\u024f]{1,3}|\S)|\s+")


class PseudoTokenizer:
    def __init__(self):
        self._ids: dict[str, int] = {}
        self._pieces: list[str] = []
        self._lock = threading.Lock()  # the summarizer's fan-out tokenizes from many threads

    def tokenize(self, text: str) -> list[int]:
        pieces = _PIECE.findall(text)
        with self._lock:
            out = []
            for piece in pieces:
                token = self._ids.get(piece)
                if token is None:
                    token = self._ids[piece] = len(self._pieces)
                    self._pieces.append(piece)
                out.append(token)
            return out

    def detokenize(self, tokens: list[int]) -> str:
        pieces = self._pieces
        return "".join(pieces[t] for t in tokens if 0 <= t < len(pieces))
