"""The index's embedding model: which one (kept in the index, so every vector in it
comes from the same model) and a function that embeds with it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from localllm.errors import DocumentIndexError
from localllm.index.store import DocumentIndex

Embed = Callable[[list[str]], np.ndarray]


def chosen_model(index: DocumentIndex, wanted: str | None) -> str | None:
    """The embedding model for this index: the one its vectors came from, or wanted for an
    index without vectors yet. Asking for another than the index's is an error: vectors
    from two models cannot be compared."""
    current = index.meta("embedding_model")
    if wanted and current and wanted != current:
        raise DocumentIndexError(
            f"this index's vectors come from {current}, not {wanted}: drop --embed, or make "
            "a new index with --index NAME for the other model"
        )
    if wanted and not current and index.passage_count():
        raise DocumentIndexError(
            "this index already holds passages without vectors: make a new index with "
            f"--index NAME --embed {wanted}"
        )
    return current or wanted


def embedder(index: DocumentIndex, host, model: str, n_ctx: int) -> Embed:
    """Embeds with model (loaded through the host in embedding mode) and records it, with
    its dimension, in the index."""
    engine = host.acquire(model, "embed", n_ctx=n_ctx).engine
    if not hasattr(engine, "embed"):
        raise DocumentIndexError(f"{model} runs on a remote engine: index with a model on "
                                 "this machine")  # fmt: skip
    if index.meta("embedding_model") is None:
        index.set_meta("embedding_model", model)
        index.set_meta("embedding_dimensions", str(engine.dimensions))

    def embed(texts: list[str]) -> np.ndarray:
        vectors, _ = engine.embed(texts)
        return np.asarray(vectors, dtype=np.float32)

    return embed
