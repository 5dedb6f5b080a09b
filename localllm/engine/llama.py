"""The llama.cpp engine: one llama_cpp.Llama per loaded model.

This is the only module (with engine/build.py and engine/bare_loop.py, and
quantize/native.py) that imports llama_cpp. Prompts are token lists; keeping
one Llama alive and feeding it prompts that share a prefix lets llama.cpp
reuse the KV cache, so only new tokens are computed. Not thread-safe: one
generation at a time per engine (a lock enforces it).
"""

from __future__ import annotations

import codecs
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from localllm.engine.base import (
    Event,
    Finished,
    GenerationStats,
    LoadOptions,
    LoadPlan,
    SamplingParams,
    Token,
)
from localllm.engine.build import (
    avoid_crashing_kernels,
    build_info,
    gpu_backend_name,
    offload_target,
)
from localllm.engine.chat_template import render_chat
from localllm.engine.plan import make_plan
from localllm.engine.prefix import can_cut_back, plan_reuse
from localllm.engine.reasoning import thinking_of
from localllm.engine.sampling import LogitRows, make_sampler, token_logprob
from localllm.engine.stops import StopScanner
from localllm.engine.watermark import watermark_for
from localllm.errors import ContextOverflow, ModelLoadError
from localllm.gguf_meta import GGUFInfo, read_gguf_info

_QUIET_LOG_CALLBACK = None  # kept referenced: llama.cpp holds a raw pointer to it


def _silence_llama_cpp_log() -> None:
    """Route llama.cpp's own log lines nowhere (LOCALLLM_DEBUG=1 keeps them).

    llama.cpp prints notices (e.g. about sliding-window caches) at levels that
    llama-cpp-python's verbose=False lets through; stderr is for our messages,
    and load failures reach the user as ModelLoadError anyway.
    """
    global _QUIET_LOG_CALLBACK
    if _QUIET_LOG_CALLBACK is None:
        import ctypes

        import llama_cpp

        _QUIET_LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(_QUIET_LOG_CALLBACK, ctypes.c_void_p(0))


def plan_load(path: str | Path, options: LoadOptions, *, n_seq: int = 1):
    """The GGUF header and the load plan for running it with n_seq sequences at once."""
    from localllm import hardware

    info = read_gguf_info(path)
    target = offload_target()
    plan = make_plan(
        info, options, ram_available=hardware.memory().available,
        physical_cores=hardware.physical_cores(), gpu_backend=target.backend,
        gpus=target.gpus, unified_memory=target.unified_memory, n_seq=n_seq,
    )  # fmt: skip
    return info, plan


def open_llama(path: str | Path, info: GGUFInfo, plan: LoadPlan, *, verbose: bool, n_ctx: int):
    """llama_cpp.Llama for plan, with a context of n_ctx tokens; ModelLoadError if refused."""
    from llama_cpp import Llama

    if not verbose:
        _silence_llama_cpp_log()
    avoid_crashing_kernels()
    try:
        return Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=min(512, n_ctx),
            n_threads=plan.n_threads,
            n_threads_batch=plan.n_threads,
            n_gpu_layers=plan.n_gpu_layers,
            # Flash attention pays off on GPUs. On a CPU it depends on the chip: deep in a
            # long context one Intel decoded slower with it (llama-bench tg64 at depth 3,072:
            # 45 against 56 tok/s), an AMD EPYC faster (124 against 108 at 1,024): off unless
            # asked (serve --flash-attn; summarize, mostly prefill, asks).
            flash_attn=plan.flash_attn if plan.flash_attn is not None else plan.n_gpu_layers != 0,
            verbose=verbose,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(
            f"llama.cpp could not load {Path(path).name} ({info.architecture}, "
            f"{info.size / 2**20:.0f} MiB): {exc}; try a smaller --ctx, a smaller quant, "
            "or upgrade localllm if the architecture is new"
        ) from None


class LlamaModelText:
    """What a loaded llama.cpp model offers besides generation: tokens, text, templates.

    Shared by the one-sequence engine below and the batching engine (engine/batch.py).
    """

    def __init__(self, llm, info: GGUFInfo, plan: LoadPlan, load_s: float):
        import llama_cpp

        self._llm = llm
        self._lib = llama_cpp
        self._vocab = llm._model.vocab
        self._n_vocab = llm.n_vocab()
        self._pieces: dict[int, bytes] = {}  # token -> its bytes, looked up once
        self._ends: dict[int, bool] = {}  # token -> whether it ends generation
        self.info = info
        self.plan = plan
        self.load_s = load_s
        self.thinking = thinking_of(info.chat_template)
        # harmony's channel markers are control tokens: streamed as text, so they can be split
        self._special_pieces = bool(self.thinking.format and self.thinking.format.control_markers)
        self.bos_text = self._piece(llm.token_bos())
        self.eos_text = self._piece(llm.token_eos())

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    @property
    def flash_attention(self) -> bool:
        """Whether the context llama.cpp runs was made with flash attention."""
        disabled = self._lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        return self._llm.context_params.flash_attn_type != disabled

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    # -- text <-> tokens -------------------------------------------------------

    @property
    def backend(self) -> str:
        if self.plan.n_gpu_layers == 0:
            return "CPU"
        return gpu_backend_name(build_info()) or "CPU"

    @property
    def n_ctx(self) -> int:
        return self._llm.n_ctx()

    def _piece(self, token: int) -> str:
        return self._llm.detokenize([token], special=True).decode("utf-8", "replace")

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = True) -> list[int]:
        """Tokens of text; add_bos follows the model's own add_bos setting."""
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)
        bos = self._llm.token_bos()
        # A chat template that writes the BOS itself must not get a second one.
        if len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:
            tokens = tokens[1:]
        return tokens

    def detokenize(self, tokens: list[int]) -> str:
        return self._llm.detokenize(tokens).decode("utf-8", "replace")

    def render_chat(
        self, messages: list[dict], *, add_generation_prompt: bool = True, **template_vars
    ) -> str:
        """The model's own template over messages; template_vars such as tools go to it."""
        return render_chat(
            self.info.chat_template,
            messages,
            bos_token=self.bos_text,
            eos_token=self.eos_text,
            add_generation_prompt=add_generation_prompt,
            **template_vars,
        )

    def chat_tokens(self, messages: list[dict], **template_vars) -> list[int]:
        return self.tokenize(self.render_chat(messages, **template_vars))

    def is_end_of_generation(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def _ends_generation(self, token: int) -> bool:
        ends = self._ends.get(token)
        if ends is None:
            ends = self._ends[token] = self.is_end_of_generation(token)
        return ends

    def _piece_bytes(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._llm.detokenize(
                [token], special=self._special_pieces
            )
        return piece


class LlamaEngine(LlamaModelText):
    """One sequence at a time, reusing the KV cache's prefix between calls.

    Not thread-safe by design: a lock makes concurrent callers take turns.
    """

    def __init__(self, llm, info: GGUFInfo, plan: LoadPlan, load_s: float):
        super().__init__(llm, info, plan, load_s)
        self._lock = threading.Lock()
        self._kv_tokens: list[int] = []  # what the KV cache holds, in order
        self._logit_rows = LogitRows(self._lib, llm._ctx.ctx, self._n_vocab)
        self._can_cut = can_cut_back(self._lib, llm._model.model)

    @classmethod
    def load(cls, path: str | Path, options: LoadOptions | None = None) -> LlamaEngine:
        """Validate the file, plan memory and threads, and load it into llama.cpp."""
        options = options or LoadOptions()
        info, plan = plan_load(path, options)
        started = time.perf_counter()
        llm = open_llama(path, info, plan, verbose=options.verbose, n_ctx=plan.n_ctx)
        return cls(llm, info, plan, time.perf_counter() - started)

    # -- generation ------------------------------------------------------------

    def reset(self) -> None:
        """Forget the KV cache, so the next prompt is computed from scratch."""
        self._llm.reset()
        self._llm._ctx.kv_cache_clear()
        self._kv_tokens = []

    def _reuse_cache(self, prompt_tokens: list[int]) -> int:
        """Keep the KV cache's longest prefix shared with this prompt; returns its length.

        At least the prompt's last token is always computed again: its logits are
        what the first answer token is sampled from.
        """
        reuse = plan_reuse(self._kv_tokens, prompt_tokens, can_cut=self._can_cut)
        if reuse.rebuild:
            self.reset()
            return 0
        if reuse.cut:
            # Some caches (sliding-window attention) cannot drop a tail: start afresh.
            if not self._llm._ctx.kv_cache_seq_rm(0, reuse.keep, -1):
                self.reset()
                return 0
            del self._kv_tokens[reuse.keep :]
        return reuse.keep

    def _decode(self, tokens: list[int]) -> None:
        """Run tokens through the model (in batches), extending the KV cache."""
        lib, ctx, n_batch = self._lib, self._llm._ctx.ctx, self._llm.n_batch
        for i in range(0, len(tokens), n_batch):
            chunk = tokens[i : i + n_batch]
            array = (lib.llama_token * len(chunk))(*chunk)  # must outlive llama_decode
            code = lib.llama_decode(ctx, lib.llama_batch_get_one(array, len(chunk)))
            if code != 0:
                self.reset()
                raise ContextOverflow(
                    f"llama.cpp could not decode ({code}): the context window of "
                    f"{self.n_ctx} tokens is full; shorten the prompt or raise --ctx"
                )
            self._kv_tokens.extend(chunk)

    def score(self, prompt_tokens: list[int], continuation: list[int]) -> float:
        """log p(continuation | prompt) in nats: how likely the model finds an answer.

        Lets callers (and tests that must hold on any CPU) compare candidate answers by
        likelihood instead of trusting which of two near-tied tokens greedy decoding picks.
        """
        import numpy as np

        if len(prompt_tokens) + len(continuation) > self.n_ctx or not prompt_tokens:
            raise ContextOverflow(
                f"{len(prompt_tokens) + len(continuation)} tokens do not fit the context "
                f"window of {self.n_ctx}: shorten them or raise --ctx"
            )
        n_vocab = self._n_vocab
        total = 0.0
        with self._lock:
            self._decode(prompt_tokens[self._reuse_cache(prompt_tokens) :])
            for token in continuation:
                pointer = self._lib.llama_get_logits_ith(self._llm._ctx.ctx, -1)
                logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,)).astype(np.float64)
                top = logits.max()
                total += float(logits[token] - top - np.log(np.exp(logits - top).sum()))
                self._decode([token])
        return total

    def stream(
        self,
        prompt_tokens: list[int],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Generate from prompt_tokens, yielding Token events, then one Finished."""
        room = self.n_ctx - len(prompt_tokens)
        if not prompt_tokens or room <= 0:
            raise ContextOverflow(
                f"the prompt is {len(prompt_tokens)} tokens but the context window is "
                f"{self.n_ctx}: shorten it or raise --ctx"
            )
        with self._lock:
            yield from self._generate(prompt_tokens, params, min(params.max_tokens, room), cancel)

    def _generate(self, prompt_tokens, params, max_tokens, cancel) -> Iterator[Event]:
        """The decode loop, on llama.cpp's C API: one decode and one sample per token.

        (llama-cpp-python's generate() also copies every token's logits into numpy
        and calls into llama.cpp several more times per token; this loop measures
        within a percent or two of `localllm bench`'s bare loop.)
        """
        started = time.perf_counter()
        stats = GenerationStats(
            prompt_tokens=len(prompt_tokens), cached_tokens=self._reuse_cache(prompt_tokens)
        )
        seed = params.seed if params.seed is not None else random.randrange(2**31)
        sampler = make_sampler(self._lib, self._vocab, self._n_vocab, params, seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopScanner(params.stop)
        first_at = last_at = None
        stats.stop_reason = "length"
        ctx = self._llm._ctx.ctx
        pending = []  # log-probabilities of tokens whose text the stop scanner holds back
        mark = watermark_for(params.watermark, self._n_vocab) if params.watermark else None
        try:
            self._decode(prompt_tokens[stats.cached_tokens :])
            while True:
                if mark is not None:  # before the sampler chain, so before a grammar's mask
                    mark.bias(self._logit_rows.row(-1), self._kv_tokens)
                token = self._lib.llama_sampler_sample(sampler, ctx, -1)
                now = time.perf_counter()
                first_at = first_at or now
                if self._ends_generation(token):
                    stats.stop_reason = "eos"
                    break
                stats.completion_tokens += 1
                last_at = now
                if params.logprobs is not None:
                    pending.append(token_logprob(self._lib, ctx, -1, self._n_vocab, token,
                                                 params.logprobs, self._piece))  # fmt: skip
                text, hit = stops.feed(decoder.decode(self._piece_bytes(token)))
                if text:
                    yield Token(text, pending or None)
                    pending = []
                if hit:
                    stats.stop_reason = "stop"
                    break
                if cancel is not None and cancel.is_set():
                    stats.stop_reason = "cancelled"
                    break
                if stats.completion_tokens >= max_tokens:
                    break
                self._decode([token])
        finally:
            self._lib.llama_sampler_free(sampler)
        if stats.stop_reason != "stop":
            tail = stops.flush() + decoder.decode(b"", final=True)
            if tail or pending:
                yield Token(tail, pending or None)
        if first_at is not None:
            stats.ttft_s = stats.prefill_s = first_at - started
            stats.decode_s = (last_at or first_at) - first_at
        yield Finished(stats=stats, stopped=stats.stop_reason == "cancelled")


def load_engine(path: str | Path, options: LoadOptions | None = None) -> LlamaEngine:
    return LlamaEngine.load(path, options)
