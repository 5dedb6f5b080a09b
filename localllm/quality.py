"""How much a quantization costs: perplexity, and KL divergence against a reference.

Like llama.cpp's perplexity tool, the text is cut into windows of n_ctx
tokens, each starting with BOS where the model uses one, and only the second
half of each window is scored, so every scored token has at least n_ctx/2
tokens of context. With a reference model (the 16-bit original), the same
positions also give the mean KL(reference || model) and how often both pick
the same most likely token.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from localllm.errors import LocalLLMError
from localllm.progress import ProgressReporter, SilentProgress

DEFAULT_CTX = 512
HELDOUT_NAME = "heldout_en.txt"


def heldout_text() -> str:
    """The held-out English text shipped for quality reports (written for this project, CC0)."""
    return resources.files("quantize").joinpath("data", HELDOUT_NAME).read_text(encoding="utf-8")


@dataclass
class QualityReport:
    model: str
    tokens_scored: int
    perplexity: float
    reference: str | None = None
    reference_perplexity: float | None = None
    kl_mean: float | None = None
    kl_p99: float | None = None
    top1_agreement: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def metadata(self) -> dict[str, float | int | str]:
        """GGUF keys for the report, stored in the quantized file."""
        keys = {"perplexity": self.perplexity, "tokens_scored": self.tokens_scored}
        if self.kl_mean is not None:
            keys |= {
                "reference_perplexity": self.reference_perplexity,
                "kl_divergence_mean": self.kl_mean,
                "top1_agreement": self.top1_agreement,
            }
        return {f"localllm.quality.{k}": v for k, v in keys.items() if v is not None}


def windows(tokens: list[int], n_ctx: int, bos: int | None) -> list[list[int]]:
    """Cut the text into scoring windows (at least one, even for a short text)."""
    body = n_ctx - (1 if bos is not None else 0)
    count = max(1, len(tokens) // body)
    prefix = [bos] if bos is not None else []
    return [prefix + tokens[i * body : (i + 1) * body] for i in range(count)]


def _scored(window: list[int]) -> slice:
    return slice(len(window) // 2, len(window) - 1)


def _check_same_vocab(model, reference, tokens: list[int]) -> None:
    step = max(1, model.n_vocab // 256)
    sample = sorted(set(tokens[:256]) | set(range(0, model.n_vocab, step)))
    same = model.n_vocab == reference.n_vocab and model.vocabulary_signature(
        sample
    ) == reference.vocabulary_signature(sample)
    if not same:
        raise LocalLLMError(
            f"{reference.path.name} has a different vocabulary from {model.path.name}: "
            "compare a quantization with the model it was made from"
        )


def evaluate(
    model_path: Path,
    text: str,
    reference_path: Path | None = None,
    *,
    n_ctx: int = DEFAULT_CTX,
    gpu_layers: int | None = None,
    progress: ProgressReporter | None = None,
) -> QualityReport:
    from localllm.engine.scoring import TokenScorer

    progress = progress or SilentProgress()
    model = TokenScorer(model_path, n_ctx, gpu_layers=gpu_layers)
    for note in model.plan.notes:
        progress.message(note)
    n_ctx = model.n_ctx  # the planner may have made the window smaller
    try:
        reference = (
            TokenScorer(reference_path, n_ctx, gpu_layers=gpu_layers) if reference_path else None
        )
    except BaseException:
        model.close()
        raise
    if reference is not None and reference.n_ctx < n_ctx:
        progress.message(f"the reference model needs a smaller window: using {reference.n_ctx}")
        n_ctx = reference.n_ctx
    try:
        tokens = model.tokenize(text)
        if len(tokens) < 16:
            raise LocalLLMError("the text is too short to measure: give at least a paragraph")
        if reference is not None:
            _check_same_vocab(model, reference, tokens)
        return _score(model, reference, windows(tokens, n_ctx, model.bos), progress)
    finally:
        model.close()
        if reference is not None:
            reference.close()


def _score(model, reference, chunks, progress) -> QualityReport:
    nll, ref_nll, kls, agree = [], [], [], 0
    progress.start("measuring quality", sum(len(c) for c in chunks), "tokens")
    for window in chunks:
        span = _scored(window)
        targets = np.asarray(window[span.start + 1 : span.stop + 1])
        rows = np.arange(len(targets))
        logp = model.logprobs(window)[span]
        nll.append(-logp[rows, targets])
        if reference is not None:
            ref_logp = reference.logprobs(window)[span]
            ref_nll.append(-ref_logp[rows, targets])
            kls.append((np.exp(ref_logp) * (ref_logp - logp)).sum(axis=-1))
            agree += int((ref_logp.argmax(-1) == logp.argmax(-1)).sum())
        progress.advance(len(window))
    progress.finish()
    all_nll = np.concatenate(nll)
    report = QualityReport(
        model=model.path.name,
        tokens_scored=int(all_nll.size),
        perplexity=float(math.exp(all_nll.mean())),
    )
    if reference is not None:
        all_kl = np.concatenate(kls)
        report.reference = reference.path.name
        report.reference_perplexity = float(math.exp(np.concatenate(ref_nll).mean()))
        report.kl_mean = float(all_kl.mean())
        report.kl_p99 = float(np.percentile(all_kl, 99))
        report.top1_agreement = agree / all_nll.size
    return report
