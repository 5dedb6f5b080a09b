"""ModelHost: the one place models are loaded, kept, evicted and closed.

The CLI, the chat app and the server ask the host for a model by reference;
the host resolves it (a callable from the store, so the engine layer does not
depend on it), loads it with the loader for the kind asked (a one-sequence
engine, the batching engine, an embedding engine), and keeps it for its
keep-alive after the last user lets go (Ollama's `keep_alive`: 0 unloads at
once, None keeps it until the host closes). Before a load that would not fit
in memory (engine/memory.py's estimate against free RAM) it evicts the least
recently used idle models. A model in use is never evicted.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from localllm.engine.base import LoadOptions
from localllm.engine.memory import estimate_memory
from localllm.engine.plan import DEFAULT_CTX, RAM_SHARE
from localllm.gguf_meta import read_gguf_info

DEFAULT_KEEP_ALIVE = 300.0  # seconds an idle model stays loaded (Ollama's default too)
SWEEP_SECONDS = 1.0
MARK_USED_EVERY_S = 60.0  # the registry's last-used stamp is a file write: not per request


@dataclass(frozen=True)
class Loader:
    """How to load one kind of engine, and how many sequences of n_ctx its KV cache holds."""

    load: Callable[[Path, LoadOptions], object]
    n_seq: int = 1


@dataclass(frozen=True)
class HostedModel:
    """What a resolver returns: the name to show and the file to load."""

    name: str
    path: Path | None
    on_used: Callable[[], None] | None = None  # e.g. the registry's last-used stamp
    open: Callable[[], object] | None = None  # a model served elsewhere: connects, loads nothing


@dataclass
class Loaded:
    name: str
    path: Path | None  # None for a model on a remote engine
    kind: str
    engine: object
    size: int  # estimated bytes (weights, KV cache, buffers)
    n_ctx: int | None
    keep_alive: float | None  # seconds idle before unloading; None: until the host closes
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    users: int = 0
    pinned: bool = False
    refs: set = field(default_factory=set)  # references that resolved to this model
    marked_at: float = 0.0  # when on_used last ran
    on_used: Callable[[], None] | None = None  # the registry's last-used stamp (HostedModel's)

    @property
    def expires_at(self) -> float | None:
        if self.keep_alive is None:
            return None
        return (
            self.last_used + self.keep_alive
            if self.users == 0
            else time.time() + max(self.keep_alive, 0.0)
        )


class ModelHost:
    def __init__(
        self,
        resolve: Callable[[str | None], HostedModel],
        loaders: dict[str, Loader],
        *,
        options: LoadOptions | None = None,
        keep_alive: float | None = DEFAULT_KEEP_ALIVE,
        memory_budget: Callable[[], float] | None = None,
        sweep: bool = False,
    ):
        self._resolve = resolve
        self._loaders = loaders
        self.options = options or LoadOptions()
        self.keep_alive = keep_alive
        self._budget = memory_budget or _free_ram_budget
        self._models: list[Loaded] = []
        self._lock = threading.RLock()
        self._load_lock = threading.Lock()  # one load at a time: loads compete for memory
        self._closed = threading.Event()
        self.notes: list[str] = []  # evictions and load notes, for the caller to show
        if sweep:
            threading.Thread(target=self._sweep, name="localllm-host", daemon=True).start()

    # -- what callers use --------------------------------------------------------

    @contextlib.contextmanager
    def use(self, ref: str | None, kind: str = "chat", **kwargs) -> Iterator[Loaded]:
        loaded = self.acquire(ref, kind, **kwargs)
        try:
            yield loaded
        finally:
            self.release(loaded)

    def acquire(self, ref: str | None, kind: str = "chat", *, n_ctx: int | None = None,
                keep_alive: float | str | None = "default",
                pin: bool = False) -> Loaded:  # fmt: skip
        """The loaded model ref names (loading it if needed), marked in use until release."""
        found = self.acquire_loaded(ref, kind, n_ctx=n_ctx, keep_alive=keep_alive, pin=pin)
        if found is not None:
            return found
        model = self._resolve(ref)
        with self._load_lock:
            loaded = self._find(model.name, kind, n_ctx)
            if loaded is None:
                keep = self.keep_alive if keep_alive == "default" else keep_alive
                loaded = self._load(model, kind, n_ctx, keep)
            with self._lock:
                loaded.refs.add(ref)
                loaded.on_used = model.on_used
                self._take(loaded, keep_alive, pin)
        self._mark_used(loaded)
        return loaded

    def acquire_loaded(self, ref: str | None, kind: str = "chat", *, n_ctx: int | None = None,
                       keep_alive: float | str | None = "default",
                       pin: bool = False) -> Loaded | None:  # fmt: skip
        """Like acquire, but only a model already loaded under ref, else None; never blocks.

        A server's requests take this path: resolving a reference reads the store, so it is
        done once per load, not once per request."""
        with self._lock:
            found = next((m for m in self._models if ref in m.refs and m.kind == kind
                          and (n_ctx is None or m.n_ctx == n_ctx)), None)  # fmt: skip
            if found is not None:
                self._take(found, keep_alive, pin)
        if found is not None:
            self._mark_used(found)  # outside the lock: it may write the registry
        return found

    def release(self, loaded: Loaded) -> None:
        with self._lock:
            loaded.users = max(0, loaded.users - 1)
            loaded.last_used = time.time()
            done = loaded.users == 0 and loaded.keep_alive is not None and loaded.keep_alive <= 0
        if done:  # only if still idle: another request may have taken it since
            self._unload(loaded, only_idle=True)

    def loaded(self) -> list[Loaded]:
        with self._lock:
            return list(self._models)

    def unload(self, name: str) -> bool:
        """Unload every idle instance of name; False when none was loaded."""
        found = [m for m in self.loaded() if m.name == name and m.users == 0]
        for m in found:
            self._unload(m, only_idle=True)
        return bool(found)

    def close(self) -> None:
        self._closed.set()
        for m in self.loaded():
            self._unload(m)

    # -- inside ------------------------------------------------------------------

    def _take(self, loaded: Loaded, keep_alive, pin: bool) -> None:
        keep = self.keep_alive if keep_alive == "default" else keep_alive
        loaded.users += 1
        loaded.pinned = loaded.pinned or pin  # pinned: kept until the host closes
        loaded.keep_alive = None if loaded.pinned else keep
        loaded.last_used = time.time()

    def _mark_used(self, loaded: Loaded) -> None:
        if loaded.on_used is not None and time.time() - loaded.marked_at >= MARK_USED_EVERY_S:
            loaded.marked_at = time.time()
            loaded.on_used()

    def _find(self, name: str, kind: str, n_ctx: int | None) -> Loaded | None:
        with self._lock:
            for m in self._models:
                if m.name == name and m.kind == kind and (n_ctx is None or m.n_ctx == n_ctx):
                    return m
        return None

    def _load(self, model: HostedModel, kind: str, n_ctx: int | None, keep) -> Loaded:
        if model.open is not None:  # on a remote engine: no memory of ours to make room in
            loaded = Loaded(model.name, None, kind, model.open(), 0, n_ctx, keep)
            with self._lock:
                self._models.append(loaded)
            return loaded
        loader = self._loaders[kind]
        options = replace(self.options, n_ctx=n_ctx or self.options.n_ctx)
        info = read_gguf_info(model.path)
        ctx = options.n_ctx or min(DEFAULT_CTX, info.context_length or DEFAULT_CTX)
        need = estimate_memory(info, ctx * loader.n_seq).total
        self._make_room(need)
        engine = loader.load(model.path, options)
        loaded = Loaded(model.name, model.path, kind, engine, need, n_ctx, keep)
        with self._lock:
            self._models.append(loaded)
        return loaded

    def _make_room(self, need: int) -> None:
        """Evict idle models, least recently used first, until need fits the budget."""
        while need > self._budget():
            with self._lock:
                idle = sorted((m for m in self._models if m.users == 0), key=lambda m: m.last_used)
            if not idle:
                return  # the load itself says whether it fits; models in use stay
            victim = idle[0]
            self.notes.append(f"unloaded {victim.name} to make room ({need / 2**20:.0f} MiB)")
            self._unload(victim, only_idle=True)

    def _unload(self, loaded: Loaded, *, only_idle: bool = False) -> None:
        with self._lock:
            if loaded not in self._models or (only_idle and loaded.users):
                return
            self._models.remove(loaded)
        loaded.engine.close()

    def _sweep(self) -> None:
        while not self._closed.wait(SWEEP_SECONDS):
            now = time.time()
            for m in self.loaded():
                expires = m.expires_at
                if m.users == 0 and expires is not None and expires <= now:
                    self._unload(m, only_idle=True)


def _free_ram_budget() -> float:
    from localllm import hardware

    return hardware.memory().available * RAM_SHARE
