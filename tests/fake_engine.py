"""A fake engine with queued outputs, for deterministic UI layout snapshots only.

Everything that depends on a model's behaviour is tested on the real starter
model; this exists so screenshots do not change from run to run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from localllm.engine import Finished, GenerationStats, LoadPlan, Token


@dataclass
class _Info:
    chat_template: str = "fake"
    architecture: str = "fake"


class FakeEngine:
    backend = "CPU"
    n_ctx = 2048
    load_s = 0.0

    def __init__(self, outputs: list[str] | None = None):
        self.outputs = deque(outputs or [])
        self.info = _Info()
        self.plan = LoadPlan(n_ctx=self.n_ctx, n_threads=2, n_gpu_layers=0, flash_attn=None)

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = True) -> list[int]:
        return [hash(w) % 50000 for w in text.split()]

    def detokenize(self, tokens: list[int]) -> str:
        return " ".join("w" for _ in tokens)

    def render_chat(self, messages, *, add_generation_prompt: bool = True) -> str:
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"

    def chat_tokens(self, messages) -> list[int]:
        return self.tokenize(self.render_chat(messages))

    def stream(self, prompt_tokens, params, cancel=None):
        text = self.outputs.popleft() if self.outputs else "OK."
        words = text.split(" ")
        for i, word in enumerate(words):
            yield Token(word if i == 0 else " " + word)
        stats = GenerationStats(len(prompt_tokens), 0, len(words), 0.05, 0.05, 0.5, "eos")
        yield Finished(stats)

    def close(self) -> None:
        pass
