"""Damaged copies of a real GGUF file, damaged the way flipped bytes damage one."""

from __future__ import annotations

import shutil
from pathlib import Path

from localllm.gguf_meta import _ARRAY, _STRING, _TOKENS, _Cursor


def token_spans(path: Path) -> list[tuple[int, bytes]]:
    """(file offset, bytes) of each token of the vocabulary, found by walking the header."""
    with path.open("rb") as fh:
        cur = _Cursor(fh)
        cur.read(4)  # magic
        cur.unpack("I")  # version
        cur.unpack("Q")  # tensor count
        for _ in range(cur.unpack("Q")):
            key, vtype = cur.string(), cur.unpack("I")
            if key == _TOKENS:
                assert vtype == _ARRAY and cur.unpack("I") == _STRING
                spans = []
                for _ in range(cur.unpack("Q")):
                    n = cur.unpack("Q")
                    spans.append((cur.pos, cur.read(n)))
                return spans
            cur.value(vtype, keep=False)
    raise AssertionError(f"{path} has no {_TOKENS}")


def copy_with_equal_tokens(src: Path, dst: Path) -> tuple[int, int]:
    """Copy src to dst with one token overwritten by an earlier one of the same length.

    Returns (earlier, overwritten): the indices of the two tokens now equal."""
    spans = token_spans(src)
    first_of_length: dict[int, int] = {}
    for i, (_, word) in enumerate(spans[1000:], start=1000):  # past the special tokens
        j = first_of_length.setdefault(len(word), i)
        if j != i:
            break
    shutil.copyfile(src, dst)
    with dst.open("r+b") as fh:
        fh.seek(spans[i][0])
        fh.write(spans[j][1])
    return j, i
