"""Per-position log-probabilities from llama.cpp, for perplexity and KL divergence.

A scorer loads the model with logits for every position (llama.cpp computes
only the last one otherwise) and evaluates one window of tokens at a time, so
memory stays at n_ctx x vocabulary floats whatever the text's length. The
window, threads and GPU layers come from the same load planner as every other
command, with that logits buffer counted against free RAM: a window that would
not fit is made smaller, with a notice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from localllm.engine.base import LoadOptions, LoadPlan
from localllm.engine.build import avoid_crashing_kernels
from localllm.errors import ModelLoadError
from localllm.gguf_meta import GGUFInfo, read_gguf_info

LOGIT_BYTES = 4  # float32 per vocabulary entry per position


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def scoring_plan(
    info: GGUFInfo, n_ctx: int, gpu_layers: int | None = None, ram_available: int | None = None
) -> LoadPlan:
    """The load plan for scoring windows of n_ctx tokens, logits buffer included."""
    from localllm import hardware
    from localllm.engine.build import offload_target
    from localllm.engine.memory import largest_context
    from localllm.engine.plan import CTX_STEP, MIN_CTX, RAM_SHARE, make_plan

    ram = hardware.memory().available if ram_available is None else ram_available
    n_vocab = int(info.get("tokenizer.ggml.tokens", 0) or 0)
    per_token = n_vocab * LOGIT_BYTES + max(0, info.kv_bytes_per_token())
    most = largest_context(info, ram * RAM_SHARE, extra_per_token=n_vocab * LOGIT_BYTES)
    fits = max(MIN_CTX, most // CTX_STEP * CTX_STEP)
    notes = []
    if n_ctx > fits:
        notes.append(
            f"a window of {n_ctx} tokens needs {n_ctx * per_token / 2**30:.1f} GiB of logits "
            f"and cache, more than free RAM allows; using {fits}"
        )
        n_ctx = fits
    target = offload_target()
    plan = make_plan(
        info, LoadOptions(n_ctx=n_ctx, n_gpu_layers=gpu_layers), ram_available=ram,
        physical_cores=hardware.physical_cores(), gpu_backend=target.backend,
        gpus=target.gpus, unified_memory=target.unified_memory, min_ctx=1,
    )  # fmt: skip
    return LoadPlan(
        n_ctx=plan.n_ctx, n_threads=plan.n_threads, n_gpu_layers=plan.n_gpu_layers,
        flash_attn=plan.flash_attn, notes=(*notes, *plan.notes),
        offload_reason=plan.offload_reason,
    )  # fmt: skip


class TokenScorer:
    def __init__(self, path: Path, n_ctx: int, threads: int | None = None,
                 gpu_layers: int | None = None):  # fmt: skip
        from localllm.engine.llama import _silence_llama_cpp_log

        info = read_gguf_info(path)  # refuses non-GGUF files with a clear message
        self.plan = scoring_plan(info, n_ctx, gpu_layers)
        n_ctx = self.plan.n_ctx
        _silence_llama_cpp_log()
        avoid_crashing_kernels()
        from llama_cpp import Llama

        try:
            self.llm = Llama(
                model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=min(512, n_ctx),
                logits_all=True, n_gpu_layers=self.plan.n_gpu_layers, verbose=False,
                n_threads=threads or self.plan.n_threads,
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
