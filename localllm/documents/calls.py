"""One model call of a document job, checked against the window and recorded.

Translate and extract make many short calls; each goes through ModelCalls,
which builds the prompt the engine's own way (its chat template, or plain text
for a base model), refuses a prompt plus reply reserve that would not fit the
window (a bug in the job, never the user's fault), honours the run's cancel
flag, and keeps per-call token counts and timings for --json stats.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from localllm.engine import Finished, SamplingParams, Token
from localllm.engine.base import GenerationStats
from localllm.engine.reasoning import answer_only, engine_thinking, split_reply


class WindowExceeded(AssertionError):
    """A prompt would not fit the window: a bug in the job, never the user's fault."""


@dataclass(frozen=True)
class CallRecord:
    kind: str
    prompt_tokens: int
    reply_tokens: int
    prefill_s: float
    decode_s: float
    stop_reason: str


class ModelCalls:
    def __init__(self, engine, cancel: threading.Event | None = None):
        self.engine = engine
        self.cancel = cancel or threading.Event()
        self.records: list[CallRecord] = []
        # Document jobs want answers: thinking models are asked with thinking off where the
        # template can, and any reasoning they still write is dropped from the reply.
        self.thinking = engine_thinking(engine)

    @property
    def n_ctx(self) -> int:
        """Read afresh each time: a remote engine's window shrinks when its counts prove low."""
        return self.engine.n_ctx

    def prompt(self, messages: list[dict]) -> list[int]:
        """The messages as prompt tokens: the chat template's, or plain text without one."""
        if self.engine.info.chat_template:
            return self.engine.chat_tokens(messages, **answer_only(self.thinking))
        text = "".join(f"{m['content']}\n\n" for m in messages)
        return self.engine.tokenize(text, special=False)

    def count(self, text: str) -> int:
        return len(self.engine.tokenize(text, special=False, add_bos=False))

    def generate(
        self, kind: str, prompt: list[int], params: SamplingParams,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[str, GenerationStats]:  # fmt: skip
        """The reply to prompt, handed piece by piece to on_text as it comes when given."""
        if len(prompt) + params.max_tokens > self.n_ctx:
            raise WindowExceeded(f"{kind} prompt of {len(prompt)} tokens + {params.max_tokens} "
                                 f"reply tokens exceeds the {self.n_ctx}-token window")  # fmt: skip
        text, stats = "", GenerationStats()
        events = self.engine.stream(prompt, params, self.cancel)
        for event in split_reply(events, self.engine, prompt, self.thinking):
            if isinstance(event, Token):
                text += event.text
                if on_text is not None:
                    on_text(event.text)
            elif isinstance(event, Finished):
                stats = event.stats
        if self.cancel.is_set():
            raise KeyboardInterrupt  # a cut-off answer is never kept or cached
        self.records.append(
            CallRecord(
                kind,
                len(prompt),
                stats.completion_tokens,
                stats.prefill_s,
                stats.decode_s,
                stats.stop_reason,
            )
        )
        return text, stats

    def totals(self, kind: str | None = None) -> dict:
        chosen = [r for r in self.records if kind is None or r.kind == kind]
        return {
            "calls": len(chosen),
            "prompt_tokens": sum(r.prompt_tokens for r in chosen),
            "output_tokens": sum(r.reply_tokens for r in chosen),
            "prefill_s": round(sum(r.prefill_s for r in chosen), 3),
            "decode_s": round(sum(r.decode_s for r in chosen), 3),
        }
