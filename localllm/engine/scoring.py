"""Per-position log-probabilities from llama.cpp, for perplexity and KL divergence.

A scorer loads the model with logits for every position (llama.cpp computes
only the last one otherwise) and evaluates one window of tokens at a time, so
memory stays at n_ctx x vocabulary floats whatever the text's length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from localllm.errors import ModelLoadError
from localllm.gguf_meta import read_gguf_info


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class TokenScorer:
    def __init__(self, path: Path, n_ctx: int, threads: int | None = None):
        from localllm import hardware
        from localllm.engine.llama import _silence_llama_cpp_log

        info = read_gguf_info(path)  # refuses non-GGUF files with a clear message
        _silence_llama_cpp_log()
        from llama_cpp import Llama

        try:
            self.llm = Llama(
                model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=min(512, n_ctx),
                logits_all=True, n_gpu_layers=-1, verbose=False,
                n_threads=threads or hardware.physical_cores(),
            )  # fmt: skip
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {path.name}: {exc}") from None
        self.path = path
        self.architecture = info.architecture
        self.n_ctx = n_ctx

    @property
    def n_vocab(self) -> int:
        return self.llm.n_vocab()

    @property
    def bos(self) -> int | None:
        token = self.llm.token_bos()
        return token if token >= 0 and self.llm._model.add_bos_token() else None

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def vocabulary_signature(self, sample: list[int]) -> list[bytes]:
        return [self.llm.detokenize([t]) for t in sample]

    def logprobs(self, tokens: list[int]) -> np.ndarray:
        """log p(next | prefix) at every position of one window: (len(tokens), vocab)."""
        if len(tokens) > self.n_ctx:
            raise ValueError(f"window of {len(tokens)} tokens exceeds n_ctx {self.n_ctx}")
        self.llm.reset()
        self.llm.eval(tokens)
        return log_softmax(np.array(self.llm.scores[: len(tokens)], dtype=np.float32))

    def close(self) -> None:
        self.llm.close()
