"""Human-readable sizes and rates for command output, and text streamed to it."""

from __future__ import annotations


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def write_now(text: str) -> None:
    """Text to stdout as it streams, unbuffered."""
    import sys

    sys.stdout.write(text)
    sys.stdout.flush()
