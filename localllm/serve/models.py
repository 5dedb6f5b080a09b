"""What the server tells clients about models: the registered ones, their headers, the
loaded ones (from the host), and pulls with progress (only with --allow-pull).

Requests name registered or catalogue models, never paths: a name is looked up
in the registry, and nothing here opens a file a request named.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import datetime, timezone

from localllm.config import Settings
from localllm.errors import LocalLLMError, ModelNotFound
from localllm.gguf_meta import read_gguf_info
from localllm.store.registry import Registry
from localllm.store.resolve import find_local

_INFO_KEYS = ("context_length", "embedding_length", "block_count", "attention.head_count",
              "attention.head_count_kv", "vocab_size")  # fmt: skip


FOREVER = 10 * 365 * 86400  # what Ollama shows for a model kept until the server stops


def _human_count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}".replace(".0", "")
    return str(n)


class ServerModels:
    def __init__(self, settings: Settings, host):
        self.settings = settings
        self.host = host
        self._headers: dict[tuple[str, int], object] = {}  # (path, mtime) -> GGUFInfo
        self._lock = threading.Lock()

    def _info(self, path: str, mtime_ns: int):
        key = (path, mtime_ns)
        with self._lock:
            if key not in self._headers:
                self._headers[key] = read_gguf_info(path)
            return self._headers[key]

    def _facts(self, entry) -> dict:
        try:
            info = self._info(entry.path, entry.mtime_ns)
            params = _human_count(info.parameter_count)
        except LocalLLMError:
            info, params = None, ""
        return {
            "name": entry.name, "path": entry.path, "size": entry.size,
            "digest": entry.sha256, "modified": entry.last_used or entry.added_at,
            "family": entry.architecture or "", "quant": (entry.quant or "").upper(),
            "parameter_size": params, "info": info,
        }  # fmt: skip

    def models(self) -> list[dict]:
        entries = sorted(Registry(self.settings).all().values(), key=lambda e: e.name)
        return [self._facts(e) for e in entries]

    def describe(self, name: str | None) -> dict:
        entry = find_local(self.settings, name or "") if name else None
        if entry is None:
            raise ModelNotFound(f"model {name!r} is not on this server: `localllm list` shows "
                                "the models it has")  # fmt: skip
        facts = self._facts(entry)
        info = facts["info"]
        arch = info.architecture if info else ""
        model_info = {"general.architecture": arch,
                      "general.parameter_count": info.parameter_count if info else 0}  # fmt: skip
        for key in _INFO_KEYS:
            value = info.get(f"{arch}.{key}") if info else None
            if isinstance(value, (int, float, str)):
                model_info[f"{arch}.{key}"] = value
        template = (info.chat_template or "") if info else ""
        capabilities = ["completion"] + (["tools"] if "tools" in template else [])
        license_ = (info.get("general.license") if info else None) or ""
        return {**facts, "template": template, "model_info": model_info,
                "capabilities": capabilities, "license": str(license_)}  # fmt: skip

    def running(self) -> list[dict]:
        out = []
        for m in self.host.loaded():
            facts = self._facts_by_name(m.name) or {"family": "", "quant": "",
                                                    "parameter_size": "", "digest": ""}  # fmt: skip
            engine = m.engine
            expires = m.expires_at
            gpu = getattr(getattr(engine, "plan", None), "n_gpu_layers", 0) != 0
            item = {
                "name": m.name, "model": m.name, "size": m.size, "digest": facts["digest"],
                "details": {"format": "gguf", "family": facts["family"],
                            "families": [facts["family"]], "quantization_level": facts["quant"],
                            "parameter_size": facts["parameter_size"], "parent_model": ""},
                "expires_at": _iso(expires if expires is not None else time.time() + FOREVER),
                "size_vram": m.size if gpu else 0, "context_length": engine.n_ctx,
                "kind": m.kind, "in_use": m.users,
                "flash_attention": getattr(engine, "flash_attention", None),
            }  # fmt: skip
            if hasattr(engine, "load_state"):
                item["slots"] = engine.load_state()
            out.append(item)
        return out

    def _facts_by_name(self, name: str) -> dict | None:
        entry = Registry(self.settings).get(name)
        return self._facts(entry) if entry else None

    def pull_now(self, name: str | None) -> None:
        """Fetch name into the store (a worker thread's call); raises what the store raises."""
        from localllm.progress import SilentProgress
        from localllm.store.pull import pull, pull_target

        if not name:
            raise ModelNotFound('name the model to pull, e.g. {"model": "smollm2-135m"}')
        pull(self.settings, pull_target(self.settings, name), SilentProgress())

    async def pull_stream(self, name: str | None):
        """Ollama's pull progress lines while the store fetches name (in a worker thread)."""
        from localllm.store.pull import pull, pull_target

        if not name:
            raise ModelNotFound('name the model to pull, e.g. {"model": "smollm2-135m"}')
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        reporter = _QueueProgress(lambda item: loop.call_soon_threadsafe(queue.put_nowait, item))

        def work() -> None:
            try:
                pull(self.settings, pull_target(self.settings, name), reporter)
                reporter.emit({"status": "success"})
            except LocalLLMError as exc:
                reporter.emit({"error": str(exc)})
            reporter.emit(None)

        threading.Thread(target=work, name="localllm-pull", daemon=True).start()
        yield {"status": "pulling manifest"}
        while (item := await queue.get()) is not None:
            yield item


class _QueueProgress:
    """A ProgressReporter that turns the store's progress into Ollama's status lines."""

    def __init__(self, emit):
        self.emit = emit
        self._task = ""
        self._total = self._done = 0
        self._last = 0.0

    def message(self, text: str) -> None:
        self.emit({"status": text})

    def start(self, description: str, total: int | None, unit: str = "B") -> None:
        self._task, self._total, self._done = description, total or 0, 0
        self.emit({"status": f"pulling {description}", "total": self._total, "completed": 0})

    def advance(self, amount: int) -> None:
        self._done += amount
        now = time.monotonic()
        if now - self._last >= 0.2:  # a few lines a second, not one per chunk
            self._last = now
            self.emit({"status": f"pulling {self._task}", "total": self._total,
                       "completed": self._done})  # fmt: skip

    def describe(self, description: str) -> None:
        pass

    def finish(self) -> None:
        with contextlib.suppress(Exception):
            self.emit({"status": f"pulling {self._task}", "total": self._total,
                       "completed": self._total or self._done})  # fmt: skip


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")
