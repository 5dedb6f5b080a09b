"""Paths built from outside data (hub headers and listings, names users give), kept inside
their folder.

A hostile mirror can send `X-Repo-Commit: ../..` or list a file named
`../../x.gguf`; a user can name a model `../../tmp/out` or `m:a`. Everything
that turns such a value into a path goes through here: one path component
is checked to be one, a relative path is checked to stay below its base
after resolving, and a model name maps to a folder name injectively (two
names never share a folder). Nothing here touches the disk except to resolve.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from localllm.errors import UnsafePath

_FOLDER_SAFE = re.compile(r"[A-Za-z0-9_\-.]")


def component(value: str, what: str) -> str:
    """value as exactly one path component (a commit, an ETag, a file name)."""
    if (
        not value
        or value in (".", "..")
        or any(sep in value for sep in ("/", "\\", "\0"))
        or (len(value) > 1 and value[1] == ":")  # a Windows drive
    ):
        raise UnsafePath(f"refusing {what} {value!r}: it is not a plain name")
    return value


def contained(base: Path, relative: str, what: str) -> Path:
    """base / relative, refused unless it stays inside base (no absolute path, no `..`)."""
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if not parts or relative.startswith(("/", "\\")) or any(p in ("..", "") for p in parts):
        raise UnsafePath(f"refusing {what} {relative!r}: it would lead outside {base}")
    for part in parts:
        component(part, what)
    target = base.joinpath(*parts)
    root = base.resolve()
    resolved = target.resolve()
    if resolved != root and root not in resolved.parents:
        raise UnsafePath(f"refusing {what} {relative!r}: it would lead outside {base}")
    return target


def folder_for_name(name: str) -> str:
    """A folder name for a model name: readable, and different for different names.

    Characters other than letters, digits, `_`, `-` and `.` are %-escaped (so `m:a` and
    `m_a` stay apart), and so is a leading dot (no hidden folders, no `..`).
    """
    if not name:
        raise UnsafePath("a model name cannot be empty")
    escaped = "".join(c if _FOLDER_SAFE.fullmatch(c) else f"%{ord(c):02X}" for c in name)
    if escaped.startswith("."):
        escaped = "%2E" + escaped[1:]
    return escaped
