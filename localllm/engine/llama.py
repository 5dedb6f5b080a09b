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
from localllm.engine.build import build_info, gpu_backend_name, offload_target
from localllm.engine.chat_template import render_chat
from localllm.engine.plan import make_plan
from localllm.engine.stops import StopScanner
from localllm.errors import LocalLLMError, ModelLoadError
from localllm.gguf_meta import GGUFInfo, read_gguf_info


class ContextOverflow(LocalLLMError, ValueError):
    """A prompt that leaves no room in the context window for an answer."""


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


def _common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class LlamaEngine:
    def __init__(self, llm, info: GGUFInfo, plan: LoadPlan, load_s: float):
        import llama_cpp

        self._llm = llm
        self._lib = llama_cpp
        self._vocab = llm._model.vocab
        self._lock = threading.Lock()
        self.info = info
        self.plan = plan
        self.load_s = load_s
        self.bos_text = self._piece(llm.token_bos())
        self.eos_text = self._piece(llm.token_eos())

    # -- loading ---------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, options: LoadOptions | None = None) -> LlamaEngine:
        """Validate the file, plan memory and threads, and load it into llama.cpp."""
        from localllm import hardware

        options = options or LoadOptions()
        info = read_gguf_info(path)
        target = offload_target()
        plan = make_plan(
            info,
            options,
            ram_available=hardware.memory().available,
            physical_cores=hardware.physical_cores(),
            gpu_backend=target.backend,
            gpus=target.gpus,
            unified_memory=target.unified_memory,
        )
        from llama_cpp import Llama

        verbose = options.verbose
        if not verbose:
            _silence_llama_cpp_log()
        started = time.perf_counter()
        try:
            llm = Llama(
                model_path=str(path),
                n_ctx=plan.n_ctx,
                n_batch=min(512, plan.n_ctx),
                n_threads=plan.n_threads,
                n_threads_batch=plan.n_threads,
                n_gpu_layers=plan.n_gpu_layers,
                # Flash attention pays off on GPUs; on CPUs it is not faster here.
                flash_attn=plan.flash_attn
                if plan.flash_attn is not None
                else plan.n_gpu_layers != 0,
                verbose=verbose,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(
                f"llama.cpp could not load {Path(path).name} ({info.architecture}, "
                f"{info.size / 2**20:.0f} MiB): {exc}; try a smaller --ctx, a smaller quant, "
                "or upgrade localllm if the architecture is new"
            ) from None
        return cls(llm, info, plan, time.perf_counter() - started)

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

    def render_chat(self, messages: list[dict], *, add_generation_prompt: bool = True) -> str:
        return render_chat(
            self.info.chat_template,
            messages,
            bos_token=self.bos_text,
            eos_token=self.eos_text,
            add_generation_prompt=add_generation_prompt,
        )

    def chat_tokens(self, messages: list[dict]) -> list[int]:
        return self.tokenize(self.render_chat(messages))

    def is_end_of_generation(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    # -- generation ------------------------------------------------------------

    def reset(self) -> None:
        """Forget the KV cache, so the next prompt is computed from scratch."""
        self._llm.reset()
        self._llm._ctx.kv_cache_clear()

    def _cached_prefix(self, prompt_tokens: list[int]) -> int:
        llm = self._llm
        if llm.n_tokens == 0:
            return 0
        n = _common_prefix(llm._input_ids[: llm.n_tokens], prompt_tokens)
        # llama.cpp recomputes the last prompt token to refresh the logits.
        return min(n, len(prompt_tokens) - 1)

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
        llm = self._llm
        stats = GenerationStats(
            prompt_tokens=len(prompt_tokens), cached_tokens=self._cached_prefix(prompt_tokens)
        )
        seed = params.seed if params.seed is not None else random.randrange(2**31)
        llm.set_seed(seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopScanner(params.stop)
        started = time.perf_counter()
        first_at = last_at = None
        stats.stop_reason = "length"
        tokens = llm.generate(
            prompt_tokens,
            temp=max(0.0, params.temperature),
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            repeat_penalty=params.repeat_penalty,
        )
        try:
            for token in tokens:
                now = time.perf_counter()
                first_at = first_at or now
                if self.is_end_of_generation(token):
                    stats.stop_reason = "eos"
                    break
                stats.completion_tokens += 1
                last_at = now
                text, hit = stops.feed(decoder.decode(llm.detokenize([token])))
                if text:
                    yield Token(text)
                if hit:
                    stats.stop_reason = "stop"
                    break
                if cancel is not None and cancel.is_set():
                    stats.stop_reason = "cancelled"
                    break
                if stats.completion_tokens >= max_tokens:
                    break
        finally:
            tokens.close()
        if stats.stop_reason != "stop":
            tail = stops.flush() + decoder.decode(b"", final=True)
            if tail:
                yield Token(tail)
        if first_at is not None:
            stats.ttft_s = stats.prefill_s = first_at - started
            stats.decode_s = (last_at or first_at) - first_at
        yield Finished(stats=stats, stopped=stats.stop_reason == "cancelled")


def load_engine(path: str | Path, options: LoadOptions | None = None) -> LlamaEngine:
    return LlamaEngine.load(path, options)
