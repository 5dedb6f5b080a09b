"""Cached partial summaries, so an interrupted summary resumes where it stopped.

One small JSON file per model call's result, under the cache folder, keyed by
the document's hash, the model, the options that shape the prompts, and the
call's place in the map-reduce tree. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from localllm.store.integrity import temp_path_for


class SummaryCache:
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
            return json.loads(self._path(key).read_text(encoding="utf-8"))["summary"]
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, summary: str) -> None:
        if not self.enabled:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(path)
        tmp.write_text(json.dumps({"summary": summary}, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
