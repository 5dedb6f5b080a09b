"""Continuous batching: N sequences in one llama.cpp context, one decode per step.

Each request gets a slot (a llama.cpp sequence with its own part of the KV
cache). A thread of its own runs the steps: one `llama_decode` over every
active slot, one token for each slot that is generating plus a prefill chunk
for slots still reading their prompt, then one sample per slot from its own
sampler chain (grammar, seed, temperature), its own stop strings and limits.
A new request goes to the idle slot whose cache shares the longest prefix with
its prompt, so a chat client that resends its history only prefills the new
turn; where another slot holds (or is computing) a longer prefix of it, such as
the instructions every part of a summary starts with, that slot's cache is
copied instead of prefilled again. A cancelled request (a client that went
away) frees its slot at the next step. llama.cpp releases the GIL while it
decodes, so callers' threads and event loops keep running.
"""

from __future__ import annotations

import codecs
import contextlib
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from localllm.engine.base import (
    EitherFlag,
    Event,
    Finished,
    GenerationStats,
    LoadOptions,
    LoadPlan,
    SamplingParams,
    Token,
)
from localllm.engine.llama import LlamaModelText, open_llama, plan_load
from localllm.engine.prefix import can_cut_back, choose_donor, common_prefix, plan_reuse
from localllm.engine.sampling import LogitRows, make_sampler, token_logprob
from localllm.engine.stops import StopScanner
from localllm.engine.watermark import watermark_for
from localllm.errors import ContextOverflow, EngineBusy, LocalLLMError, ModelLoadError
from localllm.gguf_meta import GGUFInfo

N_BATCH = 512  # tokens one decode takes at most: generating slots first, then prefill
# Another slot's cache is copied whole (llama.cpp copies a sequence's KV stream entire), so a
# copy pays where prefilling the tokens it saves costs more than moving the stream: prefill
# does ~2·parameters FLOPs a token, and CPUs compute ~8 FLOPs per byte they copy, GPUs ~60;
# copies are made where saved tokens x parameters >= COPY_COST x stream bytes.
COPY_COST = 64
MIN_BORROWED_TOKENS = 32
DEFAULT_QUEUE = 64  # requests that may wait for a slot before new ones are turned away

Sink = Callable[[object], None]  # receives Token / Finished events, or an exception


@dataclass
class _Request:
    tokens: list[int]
    params: SamplingParams
    max_tokens: int
    sink: Sink
    cancel: threading.Event | EitherFlag
    sampler: object = None
    next_pos: int = 0  # prompt tokens already in the slot's cache
    placed: bool = False  # the slot's cache is planned for the prompt (_place)
    next_token: int | None = None  # sampled, to be decoded in the next step
    started: float = field(default_factory=time.perf_counter)
    first_at: float | None = None
    last_at: float | None = None
    stats: GenerationStats = field(default_factory=GenerationStats)
    decoder: object = None
    stops: StopScanner | None = None
    pending_logprobs: list = field(default_factory=list)


@dataclass
class _Slot:
    seq_id: int
    cached: list[int] = field(default_factory=list)  # what this sequence's KV cache holds
    request: _Request | None = None
    last_used: float = 0.0


class BatchEngine(LlamaModelText):
    """A loaded model serving up to `parallel` generations at once."""

    def __init__(self, llm, info: GGUFInfo, plan: LoadPlan, load_s: float, parallel: int,
                 max_queue: int = DEFAULT_QUEUE):  # fmt: skip
        super().__init__(llm, info, plan, load_s)
        self.parallel = parallel
        self.max_queue = max_queue
        self._ctx = llm._ctx.ctx
        self._memory = self._lib.llama_get_memory(self._ctx)
        self._logit_rows = LogitRows(self._lib, self._ctx, self._n_vocab)
        self._can_cut = can_cut_back(self._lib, llm._model.model)
        # Sliding-window caches cannot drop a copied tail: those models prefill their own.
        sliding = self._lib.llama_model_n_swa(llm._model.model) > 0
        self._stream_bytes = info.kv_bytes_per_token() * self.n_ctx if not sliding else 0
        self._parameters = info.parameter_count
        self._batch = self._lib.llama_batch_init(N_BATCH, 0, 1)
        self._slots = [_Slot(i) for i in range(parallel)]
        self._pending: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self.counters = {"requests": 0, "cancelled": 0, "rejected": 0, "steps": 0}
        self._thread = threading.Thread(target=self._run, name="localllm-batch", daemon=True)
        self._thread.start()

    @classmethod
    def load(cls, path: str | Path, options: LoadOptions | None = None, *, parallel: int = 4,
             max_queue: int = DEFAULT_QUEUE) -> BatchEngine:  # fmt: skip
        """Load the model with `parallel` slots of the plan's context each."""
        options = options or LoadOptions()
        info, plan = plan_load(path, options, n_seq=parallel)
        started = time.perf_counter()
        # The Llama object gives us the model and its tokenizer; its context is replaced
        # by one with a sequence (and a KV stream) per slot.
        llm = open_llama(path, info, plan, verbose=options.verbose, n_ctx=min(256, plan.n_ctx))
        try:
            _replace_context(llm, plan, parallel)
        except ValueError as exc:
            llm.close()
            raise ModelLoadError(
                f"llama.cpp could not make {parallel} slots of {plan.n_ctx} tokens for "
                f"{Path(path).name}: {exc}; try a smaller --parallel or --ctx"
            ) from None
        return cls(llm, info, plan, time.perf_counter() - started, parallel, max_queue)

    @property
    def n_ctx(self) -> int:
        """The context window one request gets: its slot's share of the KV cache."""
        return self._lib.llama_n_ctx_seq(self._ctx)

    # -- what callers use --------------------------------------------------------

    def submit(self, prompt_tokens: list[int], params: SamplingParams, *, sink: Sink,
               cancel: threading.Event | EitherFlag) -> None:  # fmt: skip
        """Queue a generation; its events go to sink from the batching thread."""
        room = self.n_ctx - len(prompt_tokens)
        if not prompt_tokens or room <= 0:
            raise ContextOverflow(
                f"the prompt is {len(prompt_tokens)} tokens but the context window is "
                f"{self.n_ctx}: shorten it or raise --ctx"
            )
        request = _Request(list(prompt_tokens), params, min(params.max_tokens, room), sink, cancel)
        with self._cond:
            if self._closing:
                raise LocalLLMError("the model is being unloaded: send the request again")
            busy = all(s.request is not None for s in self._slots)
            if busy and len(self._pending) >= self.max_queue:
                self.counters["rejected"] += 1
                raise EngineBusy(
                    f"all {self.parallel} slots are busy and {len(self._pending)} requests "
                    "are waiting: retry shortly, or start the server with a larger --parallel"
                )
            self._pending.append(request)
            self.counters["requests"] += 1
            self._cond.notify()

    def stream(self, prompt_tokens: list[int], params: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[Event]:  # fmt: skip
        """The Engine protocol's stream, on a slot: Token events, then one Finished."""
        events: queue.SimpleQueue = queue.SimpleQueue()
        # The caller's flag is only read: a summarizer shares one among all its calls.
        reader_gone = threading.Event()
        flag = reader_gone if cancel is None else EitherFlag(cancel, reader_gone)
        self.submit(prompt_tokens, params, sink=events.put, cancel=flag)
        try:
            while True:
                event = events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            reader_gone.set()  # closed early (the caller stopped reading): free the slot

    def load_state(self) -> dict:
        """Slots busy and idle, requests waiting, and counters, for /health and `ps`."""
        with self._cond:
            busy = sum(1 for s in self._slots if s.request is not None)
            return {"slots_total": self.parallel, "slots_processing": busy,
                    "slots_idle": self.parallel - busy, "queued": len(self._pending),
                    **self.counters}  # fmt: skip

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        if self._llm is not None:
            self._lib.llama_batch_free(self._batch)
        super().close()

    # -- the batching thread -----------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not self._pending and not self._active():
                    self._cond.wait()
                if self._closing:
                    break
                self._admit()
            try:
                self._step()
            except Exception as exc:  # a bug or a llama.cpp failure: fail the requests, not us
                self._fail_all(exc)
        self._fail_all(LocalLLMError("the model was unloaded: send the request again"))

    def _active(self) -> list[_Slot]:
        return [s for s in self._slots if s.request is not None]

    def _admit(self) -> None:
        """Give waiting requests the idle slots whose caches share most with their prompts."""
        while self._pending:
            idle = [s for s in self._slots if s.request is None]
            if not idle:
                return
            request = self._pending.popleft()
            if request.cancel.is_set():
                self.counters["cancelled"] += 1
                request.stats.stop_reason = "cancelled"
                request.sink(Finished(stats=request.stats, stopped=True))
                continue
            tokens = request.tokens
            slot = max(idle, key=lambda s: (common_prefix(s.cached, tokens), -s.last_used))
            self._start(slot, request)

    def _start(self, slot: _Slot, request: _Request) -> None:
        """Seat request in slot; its cache is planned at the next step (_place)."""
        params = request.params
        seed = params.seed if params.seed is not None else random.randrange(2**31)
        try:
            request.sampler = make_sampler(self._lib, self._vocab, self._n_vocab, params, seed)
        except LocalLLMError as exc:
            request.sink(exc)
            return
        request.stats = GenerationStats(prompt_tokens=len(request.tokens))
        request.stats.stop_reason = "length"
        request.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        request.stops = StopScanner(params.stop)
        slot.request = request

    def _place(self, slot: _Slot, request: _Request) -> None:
        """Plan the slot's cache for its prompt, between steps (every slot's cache is computed
        then): keep the prefix it shares, or first copy another slot's longer one. Left
        unplaced, to wait a step, while another slot is still computing a longer one."""
        donor, wait = self._donor(slot, request.tokens)
        if wait:
            return
        mem, seq = self._memory, slot.seq_id
        if donor is not None:
            # Queued by llama.cpp for the next decode, ahead of that step's own tokens.
            self._lib.llama_memory_seq_cp(mem, donor.seq_id, seq, -1, -1)
            slot.cached = list(donor.cached)
        # At least the prompt's last token is decoded again: its logits give the first answer.
        reuse = plan_reuse(slot.cached, request.tokens, can_cut=self._can_cut)
        keep = reuse.keep
        # Some caches (sliding-window attention) cannot drop a tail either: start afresh.
        if reuse.rebuild or (reuse.cut and not self._lib.llama_memory_seq_rm(mem, seq, keep, -1)):
            self._lib.llama_memory_seq_rm(mem, seq, -1, -1)
            keep = 0
        del slot.cached[keep:]
        request.next_pos = request.stats.cached_tokens = keep
        request.placed = True

    def _donor(self, slot: _Slot, tokens: list[int]) -> tuple[_Slot | None, bool]:
        """The other slot whose cache to copy for this prompt (None: keep this slot's own),
        and whether to wait a step for a slot still prefilling a longer shared prefix."""
        if not self._stream_bytes or not self._can_cut:
            return None, False
        others = [s for s in self._slots if s is not slot]
        views = [(s.cached, _prefilling(s)) for s in others]
        index, wait = choose_donor(tokens, slot.cached, views, self._copy_pays)
        return (None if index is None else others[index]), wait

    def _copy_pays(self, tokens_saved: int) -> bool:
        return (
            tokens_saved >= MIN_BORROWED_TOKENS
            and tokens_saved * self._parameters >= COPY_COST * self._stream_bytes
        )

    def _step(self) -> None:
        """One decode over every active slot, then one sample for each that has logits."""
        lib, batch = self._lib, self._batch
        rows: list[tuple[_Slot, int]] = []  # slots to sample, and their logits row
        n = 0
        for slot in self._active():
            request = slot.request
            if not request.placed and not request.cancel.is_set():
                self._place(slot, request)
            if request.cancel.is_set():
                request.stats.stop_reason = "cancelled"
                self._finish(slot)
            elif request.next_token is not None:
                _put(batch, n, request.next_token, len(slot.cached), slot.seq_id, True)
                slot.cached.append(request.next_token)
                request.next_token = None
                rows.append((slot, n))
                n += 1
        for slot in self._active():
            request = slot.request
            if not request.placed or request.next_pos >= len(request.tokens) or n >= N_BATCH:
                continue
            chunk = request.tokens[request.next_pos : request.next_pos + N_BATCH - n]
            last = request.next_pos + len(chunk) == len(request.tokens)
            for j, token in enumerate(chunk):
                _put(batch, n, token, len(slot.cached) + j, slot.seq_id,
                     last and j == len(chunk) - 1)  # fmt: skip
                n += 1
            slot.cached.extend(chunk)
            request.next_pos += len(chunk)
            if last:
                rows.append((slot, n - 1))
        if n == 0:
            return
        batch.n_tokens = n
        code = lib.llama_decode(self._ctx, batch)
        self.counters["steps"] += 1
        if code != 0:
            raise ContextOverflow(f"llama.cpp could not decode this step ({code}): "
                                  "the KV cache is full; lower --parallel or --ctx")  # fmt: skip
        for slot, row in rows:
            self._sample(slot, row)

    def _sample(self, slot: _Slot, row: int) -> None:
        request = slot.request
        if request.params.watermark is not None:  # before the chain, so before a grammar
            mark = watermark_for(request.params.watermark, self._n_vocab)
            mark.bias(self._logit_rows.row(row), slot.cached)
        token = self._lib.llama_sampler_sample(request.sampler, self._ctx, row)
        now = time.perf_counter()
        request.first_at = request.first_at or now
        stats = request.stats
        if self._ends_generation(token):
            stats.stop_reason = "eos"
            return self._finish(slot)
        stats.completion_tokens += 1
        request.last_at = now
        if request.params.logprobs is not None:
            request.pending_logprobs.append(token_logprob(
                self._lib, self._ctx, row, self._n_vocab, token, request.params.logprobs,
                self._piece))  # fmt: skip
        text, hit = request.stops.feed(request.decoder.decode(self._piece_bytes(token)))
        if text:
            request.sink(Token(text, request.pending_logprobs or None))
            request.pending_logprobs = []
        if hit:
            stats.stop_reason = "stop"
            return self._finish(slot)
        if stats.completion_tokens >= request.max_tokens:
            return self._finish(slot)
        request.next_token = token

    def _finish(self, slot: _Slot) -> None:
        request, slot.request = slot.request, None
        slot.last_used = time.perf_counter()
        stats = request.stats
        self._lib.llama_sampler_free(request.sampler)
        if stats.stop_reason != "stop":
            tail = request.stops.flush() + request.decoder.decode(b"", final=True)
            if tail or request.pending_logprobs:
                request.sink(Token(tail, request.pending_logprobs or None))
        if request.first_at is not None:
            stats.ttft_s = stats.prefill_s = request.first_at - request.started
            stats.decode_s = (request.last_at or request.first_at) - request.first_at
        if stats.stop_reason == "cancelled":
            self.counters["cancelled"] += 1
        request.sink(Finished(stats=stats, stopped=stats.stop_reason == "cancelled"))

    def _fail_all(self, exc: BaseException) -> None:
        with self._cond:
            waiting, self._pending = list(self._pending), deque()
        for slot in self._active():
            request, slot.request = slot.request, None
            with contextlib.suppress(Exception):
                self._lib.llama_sampler_free(request.sampler)
            self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
            slot.cached = []
            request.sink(exc)
        for request in waiting:
            request.sink(exc)


def load_batched(path: str | Path, options: LoadOptions, *, most: int,
                 cpu_slot_ctx: int | None = None):  # fmt: skip
    """The batching engine with as many slots (up to `most`) as fit in free RAM beside the
    weights, each of the plan's window, and none that would push a layer off the GPU; the
    one-sequence engine where only one fits.

    cpu_slot_ctx: each slot's window when the caller named none and the model runs on the
    CPU, for work whose calls are known to be short: the KV cache of 8 slots of a full
    window is zeroed, page by page, at load, and mostly never used."""
    from localllm import hardware
    from localllm.engine.llama import load_engine
    from localllm.engine.plan import default_parallel

    info, plan = plan_load(path, options)
    short = cpu_slot_ctx and options.n_ctx is None and plan.n_gpu_layers == 0
    if short and cpu_slot_ctx < plan.n_ctx:
        options = replace(options, n_ctx=cpu_slot_ctx)
        info, plan = plan_load(path, options)
    slots = default_parallel(info, plan.n_ctx, hardware.memory().available, most=most)
    if plan.n_gpu_layers != 0:  # the slots' KV cache must not push a layer off the GPU
        layers = _layers_on_gpu(plan)
        while slots > 1 and _layers_on_gpu(plan_load(path, options, n_seq=slots)[1]) < layers:
            slots -= 1
    if slots == 1:
        return load_engine(path, options)
    return BatchEngine.load(path, options, parallel=slots)


def _prefilling(slot: _Slot) -> list[int] | None:
    """The prompt a slot is still reading into its cache, if any."""
    request = slot.request
    if request is None or not request.placed or request.next_pos >= len(request.tokens):
        return None
    return request.tokens


def _layers_on_gpu(plan: LoadPlan) -> float:
    return float("inf") if plan.n_gpu_layers < 0 else plan.n_gpu_layers  # -1: all of them


def _put(batch, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
    batch.token[i] = token
    batch.pos[i] = pos
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq_id
    batch.logits[i] = logits


def _replace_context(llm, plan: LoadPlan, parallel: int) -> None:
    """Give llm a context of `parallel` sequences with plan.n_ctx tokens of KV cache each."""
    import llama_cpp
    from llama_cpp import _internals

    params = llm.context_params
    params.n_ctx = plan.n_ctx * parallel
    params.n_batch = params.n_ubatch = N_BATCH
    params.n_seq_max = parallel
    # A KV stream per sequence: each slot's attention reads only its own cells, so an
    # answer does not depend on what the other slots hold (nor on their lengths).
    params.kv_unified = False
    llm._ctx.close()
    context = _internals.LlamaContext(model=llm._model, params=params, verbose=llm.verbose)
    llm._ctx = llm._stack.enter_context(contextlib.closing(context))
    llama_cpp.llama_set_n_threads(llm._ctx.ctx, plan.n_threads, plan.n_threads)
