"""Embeddings: a model loaded in llama.cpp's embedding mode, mean-pooled and L2-normalised.

Embedding models carry their pooling in their header and get it; generative models have
none, and get the mean of the last hidden states, as llama-server and Ollama give them. One call
at a time (a lock): llama.cpp's embedding context is not shared.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from localllm.engine.base import LoadOptions
from localllm.engine.build import avoid_crashing_kernels
from localllm.engine.llama import _silence_llama_cpp_log, plan_load
from localllm.errors import ContextOverflow, ModelLoadError

EMBED_CTX = 2048  # tokens one input may have (the model's trained context if smaller)


def _pooling(info, llama_cpp) -> int:
    """An embedding model's own pooling (CLS for BGE, last token for Qwen3-Embedding), as its
    header gives it; the mean for a generative model, whose header has none."""
    if info.get(f"{info.architecture}.pooling_type") is not None:
        return llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED  # llama.cpp reads the header's own
    return llama_cpp.LLAMA_POOLING_TYPE_MEAN


class EmbeddingEngine:
    def __init__(self, llm, info, plan, load_s: float):
        self._llm = llm
        self._lock = threading.Lock()
        self.info = info
        self.plan = plan
        self.load_s = load_s

    @classmethod
    def load(cls, path: str | Path, options: LoadOptions | None = None) -> EmbeddingEngine:
        import llama_cpp

        options = options or LoadOptions()
        n_ctx = options.n_ctx or EMBED_CTX
        info, plan = plan_load(path, LoadOptions(n_ctx=n_ctx, n_threads=options.n_threads,
                                                 n_gpu_layers=options.n_gpu_layers))  # fmt: skip
        if not options.verbose:
            _silence_llama_cpp_log()
        avoid_crashing_kernels()
        started = time.perf_counter()
        try:
            llm = llama_cpp.Llama(
                model_path=str(path), embedding=True, n_ctx=plan.n_ctx, n_batch=plan.n_ctx,
                n_ubatch=plan.n_ctx, n_threads=plan.n_threads, n_threads_batch=plan.n_threads,
                n_gpu_layers=plan.n_gpu_layers, pooling_type=_pooling(info, llama_cpp),
                verbose=options.verbose,
            )  # fmt: skip
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(
                f"llama.cpp could not load {Path(path).name} for embeddings: {exc}"
            ) from None
        return cls(llm, info, plan, time.perf_counter() - started)

    @property
    def n_ctx(self) -> int:
        return self._llm.n_ctx()

    @property
    def dimensions(self) -> int:
        return self._llm.n_embd()

    def count(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8")))

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Unit-length vectors for texts, and the tokens they took; ContextOverflow if long."""
        counts = [self.count(t) for t in texts]
        for i, n in enumerate(counts):
            if n > self.n_ctx:
                raise ContextOverflow(
                    f"input {i} is {n} tokens but embeddings take at most {self.n_ctx}: "
                    "split it into smaller pieces"
                )
        with self._lock:
            vectors = [self._llm.embed(t, normalize=True) for t in texts]
        return vectors, sum(counts)

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()
