"""Stop strings over a token stream, without ever printing part of a stop string.

Text that could be the start of a stop string is held back until the next
token shows whether it is; everything else is released at once, so streaming
stays immediate.
"""

from __future__ import annotations


class StopScanner:
    def __init__(self, stops: tuple[str, ...] | list[str]):
        self.stops = tuple(s for s in stops if s)
        self._held = ""

    def _holdback(self, text: str) -> int:
        """Length of the longest tail of text that begins some stop string."""
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[-n:]):
                    longest = n
                    break
        return longest

    def feed(self, text: str) -> tuple[str, bool]:
        """Add text; returns (text safe to show, whether a stop string was reached)."""
        if not self.stops:
            return text, False
        buf = self._held + text
        cut = min((i for i in (buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self._held = ""
            return buf[:cut], True
        keep = self._holdback(buf)
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        """Release held text at the end of the stream (it never became a stop)."""
        held, self._held = self._held, ""
        return held
