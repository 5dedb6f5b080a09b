"""GGUF headers of remote files, read over HTTP Range requests without the weights.

Lets `pull` check a model's architecture and memory fit before downloading it:
only the header travels, in requests that grow with what was read, so the bytes
fetched past the header's end stay within a quarter of it. Parsing is
gguf_meta's; this module only supplies the bytes.
"""

from __future__ import annotations

from localllm.errors import InvalidModelFile
from localllm.gguf_meta import GGUFInfo, TruncatedHeader, parse_header


class RangeStream:
    """A forward-only stream over a remote file, fetched in growing Range requests.

    Each request asks for a quarter of what was read so far (at least 64 KiB),
    so the bytes fetched past the end of the header stay within 25% of it,
    whatever the file size, in a logarithmic number of requests.
    """

    MIN_CHUNK = 64 * 1024

    def __init__(self, fetch, size: int | None = None):
        self._fetch = fetch  # (start, length) -> bytes
        self._size = size
        self._buffer = b""
        self._pos = 0  # read position inside _buffer
        self._end = 0  # file offset just past _buffer
        self.bytes_fetched = 0
        self.requests = 0

    def read(self, n: int) -> bytes:
        if self._pos + n <= len(self._buffer):  # the common case: small reads from the buffer
            out = self._buffer[self._pos : self._pos + n]
            self._pos += n
            return out
        parts = [self._buffer[self._pos :]]
        missing = n - len(parts[0])
        self._buffer, self._pos = b"", 0
        while missing > 0 and self._fill():
            take = self._buffer[:missing]
            parts.append(take)
            self._pos = len(take)
            missing -= len(take)
        return b"".join(parts)

    def _fill(self) -> bool:
        length = max(self.MIN_CHUNK, self.bytes_fetched // 4)
        if self._size is not None:
            length = min(length, self._size - self._end)
        if length <= 0:
            return False
        data = self._fetch(self._end, length)
        self.requests += 1
        self.bytes_fetched += len(data)
        self._end += len(data)
        self._buffer, self._pos = data, 0
        return bool(data)


def read_remote_gguf_info(fetch, size: int, name: str) -> tuple[GGUFInfo, RangeStream]:
    """Parse a remote GGUF header via `fetch(start, length)`; returns it and the stream stats."""
    stream = RangeStream(fetch, size)
    try:
        info = parse_header(stream, size)
    except (TruncatedHeader, ValueError, UnicodeDecodeError) as exc:
        raise InvalidModelFile(
            f"{name} does not start with a valid GGUF header ({exc or 'cut short'})"
        ) from None
    return info, stream
