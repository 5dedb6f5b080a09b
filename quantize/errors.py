"""Errors a user can cause while converting; each message says what to do.

`quantize` does not import `localllm`, so the command line maps these to its
one-line errors itself.
"""

from __future__ import annotations


class QuantizeError(Exception):
    """A conversion problem the user can fix (bad input, missing file, no space)."""


class CheckpointError(QuantizeError, ValueError):
    """The checkpoint folder is incomplete or damaged."""


class UnsupportedModel(QuantizeError, ValueError):
    """An architecture or vocabulary this converter does not handle."""


class NotEnoughSpace(QuantizeError, OSError):
    """The output would not fit on the disk."""
