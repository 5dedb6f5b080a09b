"""Cached model answers (summary parts, translated chunks, extractions), so an interrupted
job resumes where it stopped.

One small JSON file per model call's result, under the cache folder, keyed by
the document's hash, the model, the options that shape the prompts, and the
call's place in the job. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from localllm.store.integrity import write_text_atomically


class CallCache:
    def __init__(self, folder: Path, enabled: bool = True):
        self.folder = folder
        self.enabled = enabled

    @staticmethod
    def key(*parts: object) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        if not self.enabled:
            return None
        try:
            # "summary": the key the first job (summarize) stored answers under
            return json.loads(self._path(key).read_text(encoding="utf-8"))["summary"]
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, answer: str) -> None:
        if not self.enabled:
            return
        write_text_atomically(self._path(key), json.dumps({"summary": answer}, ensure_ascii=False))
