"""The engine contract: what every inference backend offers the rest of localllm.

Generation is a stream of events (Token ... Finished) with a cancel flag, so
the CLI, the chat UI and the summarizer share one path. Nothing here imports
llama_cpp; the llama.cpp implementation lives in engine/llama.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from localllm.engine.watermark import WatermarkSpec
    from localllm.gguf_meta import GGUFInfo


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 512
    temperature: float = 0.7  # 0 means greedy: always the most likely token
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    seed: int | None = None  # None: a fresh random seed per call
    stop: tuple[str, ...] = ()
    grammar: str | None = None  # GBNF the answer must match (engine/grammar.py makes it)
    logprobs: int | None = None  # None: none; N: each token's log-probability and N runners-up
    watermark: WatermarkSpec | None = None  # green-list bias on the logits (engine/watermark.py)


@dataclass(frozen=True)
class LoadOptions:
    """What the user asked for; None means 'choose for me'."""

    n_ctx: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    flash_attn: bool | None = None
    verbose: bool = False  # let llama.cpp's own log through (LOCALLLM_DEBUG=1)


@dataclass(frozen=True)
class LoadPlan:
    """What the engine will actually use, and why it differs from the request."""

    n_ctx: int
    n_threads: int
    n_gpu_layers: int  # -1 = all
    flash_attn: bool | None  # None = let llama.cpp decide (auto)
    notes: tuple[str, ...] = ()
    offload_reason: str = ""  # why n_gpu_layers is what it is, for doctor and --stats


@dataclass(frozen=True)
class EngineFacts:
    """What a caller may rely on about an engine, wherever it runs."""

    name: str
    backend: str
    n_ctx: int
    parallel: int = 1  # requests it serves at once (slots); fan-out sizes itself from this
    exact_tokens: bool = True  # False: counts are a high estimate (engine/pseudo_tokens.py)
    where: str = "this machine"  # where prompts are sent, for progress lines and doctor


def facts_of(engine) -> EngineFacts:
    """engine.facts where it has them; else what every local engine has."""
    facts = getattr(engine, "facts", None)
    if isinstance(facts, EngineFacts):
        return facts
    return EngineFacts(name=engine.info.name or "model", backend=engine.backend,
                       n_ctx=engine.n_ctx, parallel=getattr(engine, "parallel", 1))  # fmt: skip


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens reused from the KV cache, not recomputed
    completion_tokens: int = 0
    ttft_s: float = 0.0  # call start to first generated token
    prefill_s: float = 0.0
    decode_s: float = 0.0  # first generated token to last
    stop_reason: str = "stop"  # "eos" | "stop" (a stop string) | "length" | "cancelled"
    reasoning_tokens: int = 0  # of completion_tokens, those a thinking model reasoned with

    @property
    def prefill_tps(self) -> float:
        evaluated = self.prompt_tokens - self.cached_tokens
        return evaluated / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        # The first token's time belongs to prefill; decode speed is measured after it.
        steps = self.completion_tokens - 1
        return steps / self.decode_s if steps > 0 and self.decode_s > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "ttft_s": round(self.ttft_s, 4),
            "prefill_tps": round(self.prefill_tps, 2),
            "decode_tps": round(self.decode_tps, 2),
            "stop_reason": self.stop_reason,
            **({"reasoning_tokens": self.reasoning_tokens} if self.reasoning_tokens else {}),
        }


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log-probability (nats, before sampling filters) and runners-up."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass
class Token:
    text: str
    logprobs: list[TokenLogprob] | None = None  # the tokens behind text, when asked for


@dataclass
class Reasoning:
    """Text a thinking model wrote before its answer (engine/reasoning.py splits it off)."""

    text: str


@dataclass
class Finished:
    stats: GenerationStats
    stopped: bool = False  # True when cancelled by the caller


Event = Token | Reasoning | Finished


@dataclass(frozen=True)
class BuildInfo:
    llama_cpp_python: str
    backends: dict[str, bool] = field(default_factory=dict)  # CPU, Metal, CUDA, Vulkan
    gpu_offload: bool = False
    system_info: str = ""


class Tokenizer(Protocol):
    """Tokens and chat prompts: exact where the backend can count, estimated high where not
    (EngineFacts.exact_tokens says which)."""

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = True) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str: ...

    def render_chat(self, messages: list[dict], *, add_generation_prompt: bool = True) -> str: ...

    def chat_tokens(self, messages: list[dict], **template_vars) -> list[int]: ...


WAIT_POLL_S = 0.05  # how often EitherFlag.wait looks at its second flag


class EitherFlag:
    """A cancel flag set when either of two flags is. A caller's flag is the caller's to set
    (a summarizer shares one among all its calls), so an engine that must stop a request of
    its own accord (its reader went away, a guard tripped) watches this pair instead."""

    def __init__(self, a: threading.Event, b: threading.Event):
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return self.a.is_set() or self.b.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """As Event.wait (a retry's backoff sleeps on the flag): True once either is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self.a.wait(WAIT_POLL_S if left is None else min(WAIT_POLL_S, left))
        return True


class Generator(Protocol):
    """Answers: a stream of Token events and one Finished, stopped early by cancel, which
    the engine only reads: the caller may share one flag among many calls."""

    def stream(
        self,
        prompt_tokens: list[int],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]: ...


class Engine(Tokenizer, Generator, Protocol):
    """A model that tokenizes, formats chats and streams answers: in this process
    (engine/llama.py, engine/batch.py), in a child (engine/process.py) or over HTTP
    (engine/http.py). facts_of(engine) gives its EngineFacts."""

    info: GGUFInfo
    plan: LoadPlan

    @property
    def backend(self) -> str: ...

    @property
    def n_ctx(self) -> int: ...

    def close(self) -> None: ...
