"""The engine in a child process, for the chat app.

The chat app draws on its UI thread while the model generates. In one process
the two share Python's GIL, and llama-cpp-python's generation loop needs it
several times per token (after every call into llama.cpp): each redraw then
holds up decoding for as long as it runs, and a redraw is tens of milliseconds
of Python. A child process has its own interpreter, so the model decodes at
full speed whatever the UI does (what Ollama does with its runner processes).

ProcessEngine offers the same methods as LlamaEngine; each call is a request
over a pipe, answered in order (a lock keeps one call at a time). stream()
forwards Token events as the child produces them and passes the caller's
cancel flag on through a shared event.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from localllm.engine.base import Event, LoadOptions, LoadPlan, SamplingParams
from localllm.errors import LocalLLMError, ModelLoadError
from localllm.gguf_meta import GGUFInfo

# What a parent may ask of the child's engine (and nothing else).
_METHODS = frozenset(
    {"tokenize", "detokenize", "render_chat", "chat_tokens", "is_end_of_generation", "reset"}
)
_START_TIMEOUT_S = 600  # loading a large model from a slow disk takes a while
SEND_EVERY_S = 0.1  # streamed tokens travel in batches this far apart (cancel latency too)


@dataclass(frozen=True)
class _Facts:
    """What the parent keeps about the loaded model, sent once after loading."""

    info: GGUFInfo
    plan: LoadPlan
    backend: str
    n_ctx: int
    load_s: float
    bos_text: str
    eos_text: str


def _portable(exc: BaseException) -> LocalLLMError:
    """The child's exception as one the parent can unpickle and show as one line."""
    if isinstance(exc, LocalLLMError):
        return exc
    return LocalLLMError(f"the model process failed: {exc.__class__.__name__}: {exc}")


def _quiet_output() -> None:
    """The child shares the terminal the chat app draws on: nothing of it may print there."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _serve(conn, path: str, options: LoadOptions, cancel) -> None:
    """The child process: load the model, then answer requests until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    if not options.verbose:
        _quiet_output()
    from localllm.engine.llama import load_engine

    try:
        engine = load_engine(path, options)
    except BaseException as exc:
        conn.send(("error", _portable(exc)))
        return
    facts = _Facts(
        engine.info, engine.plan, engine.backend, engine.n_ctx, engine.load_s,
        engine.bos_text, engine.eos_text,
    )  # fmt: skip
    conn.send(("ok", facts))
    try:
        _answer_requests(conn, engine, cancel)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone
    finally:
        engine.close()


def _send_stream(conn, events) -> None:
    """Send events in batches: the first at once, then every SEND_EVERY_S.

    Each message wakes a thread in the parent, and on a machine whose cores all
    decode, every wake-up takes a core from llama.cpp for a moment."""
    batch: list = []
    last = float("-inf")
    for event in events:
        batch.append(event)
        if time.monotonic() - last >= SEND_EVERY_S:
            conn.send(("events", batch))
            batch, last = [], time.monotonic()
    if batch:
        conn.send(("events", batch))
    conn.send(("end", None))


def _answer_requests(conn, engine, cancel) -> None:
    while True:
        name, args, kwargs = conn.recv()
        if name == "close":
            return
        try:
            if name == "stream":
                _send_stream(conn, engine.stream(*args, cancel=cancel))
            elif name == "apply":
                func, *rest = args
                conn.send(("ok", func(engine, *rest, **kwargs)))
            elif name in _METHODS:
                conn.send(("ok", getattr(engine, name)(*args, **kwargs)))
            else:
                conn.send(("error", LocalLLMError(f"unknown engine request {name!r}")))
        except Exception as exc:
            conn.send(("error", _portable(exc)))


class ProcessEngine:
    """A model loaded in a child process; the Engine protocol over a pipe."""

    def __init__(self, path: str | Path, options: LoadOptions | None = None):
        context = multiprocessing.get_context("spawn")  # fork is unsafe with threads
        self._conn, child_conn = context.Pipe()
        self._cancel = context.Event()
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_serve, args=(child_conn, str(path), options or LoadOptions(), self._cancel),
            name="localllm-model", daemon=True,
        )  # fmt: skip
        self._process.start()
        child_conn.close()  # the child holds its own end; EOF then means it died
        if not self._conn.poll(_START_TIMEOUT_S):
            self.close()
            raise ModelLoadError(f"the model process did not start within {_START_TIMEOUT_S} s")
        facts = self._reply()
        self.info, self.plan, self.backend = facts.info, facts.plan, facts.backend
        self.n_ctx, self.load_s = facts.n_ctx, facts.load_s
        self.bos_text, self.eos_text = facts.bos_text, facts.eos_text

    def _stopped(self) -> ModelLoadError:
        if self._process is not None:
            self._process.join(timeout=1)
        code = self._process.exitcode if self._process else None
        from localllm.store.probe import crash_name

        crash = crash_name(code)
        if crash:  # an assertion in llama.cpp (SIGABRT), or a bad read
            return ModelLoadError(
                f"llama.cpp crashed in the model process ({crash}): the model file may be "
                "damaged; download it again, or run with LOCALLLM_DEBUG=1 to see llama.cpp's "
                "messages"
            )
        return ModelLoadError(
            f"the model process stopped (exit code {code}); it may have run out of memory: "
            "try a smaller model or --ctx, or LOCALLLM_DEBUG=1 to see llama.cpp's messages"
        )

    def _send(self, name: str, args: tuple = (), kwargs: dict | None = None) -> None:
        try:
            self._conn.send((name, args, kwargs or {}))
        except (BrokenPipeError, OSError):
            raise self._stopped() from None

    def _receive(self) -> tuple[str, object]:
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            raise self._stopped() from None
        if kind == "error":
            raise value
        return kind, value

    def _reply(self):
        return self._receive()[1]

    def _call(self, name: str, *args, **kwargs):
        with self._lock:
            self._send(name, args, kwargs)
            return self._reply()

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = True) -> list[int]:
        return self._call("tokenize", text, special=special, add_bos=add_bos)

    def detokenize(self, tokens: list[int]) -> str:
        return self._call("detokenize", tokens)

    def render_chat(self, messages: list[dict], *, add_generation_prompt: bool = True,
                    **template_vars) -> str:  # fmt: skip
        return self._call("render_chat", messages, add_generation_prompt=add_generation_prompt,
                          **template_vars)  # fmt: skip

    def chat_tokens(self, messages: list[dict], **template_vars) -> list[int]:
        return self._call("chat_tokens", messages, **template_vars)

    def is_end_of_generation(self, token: int) -> bool:
        return self._call("is_end_of_generation", token)

    def reset(self) -> None:
        self._call("reset")

    def apply(self, func, *args, **kwargs):
        """Run func(engine, *args) in the child (func must be importable by name)."""
        return self._call("apply", func, *args, **kwargs)

    def stream(
        self,
        prompt_tokens: list[int],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Token events as the child produces them, then one Finished."""
        with self._lock:
            self._cancel.clear()
            self._send("stream", (prompt_tokens, params))
            done = False
            try:
                while True:
                    if cancel is not None and cancel.is_set():
                        self._cancel.set()  # the child stops after its current token
                    try:
                        kind, value = self._receive()
                    except LocalLLMError:
                        done = True  # the child has given up on this request
                        raise
                    if kind == "end":
                        done = True
                        return
                    for event in value:
                        yield event
                        if cancel is not None and cancel.is_set():
                            self._cancel.set()
            finally:
                if not done:  # the caller stopped listening: stop the child and drain
                    self._cancel.set()
                    while self._receive()[0] != "end":
                        pass

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        self._cancel.set()  # an answer still streaming (the app quit mid-answer) stops now
        if self._lock.acquire(timeout=5):
            try:
                self._conn.send(("close", (), {}))
            except (OSError, ValueError):
                pass
            finally:
                self._lock.release()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()
        self._conn.close()


def load_process_engine(path: str | Path, options: LoadOptions | None = None) -> ProcessEngine:
    return ProcessEngine(path, options)
