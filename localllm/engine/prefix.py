"""How much of a cached sequence a new prompt may reuse: the engine's decision table.

An attention KV cache can be cut back to any position (llama_memory_seq_rm), so a prompt
that shares a prefix with the cache reuses exactly that prefix. A recurrent state (Mamba,
RWKV, the recurrent layers of hybrids such as Qwen3.5, LFM2 and Granite-H) summarises the
whole past in one state: it can be continued, never cut back. For those models the cache
is reused only when it is all prefix of the prompt; anything else rebuilds from empty
rather than reuse a state that holds tokens the prompt does not have.

Where several sequences run side by side (engine/batch.py), a prompt may also start
from another sequence's cache, copied, when that holds a longer prefix of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class Reuse:
    keep: int  # cached tokens kept: prefill starts at this position
    cut: bool  # the cache's tail after keep must be removed first
    rebuild: bool  # the cache must be emptied: prefill starts from nothing


def plan_reuse(cached: Sequence[int], prompt: Sequence[int], *, can_cut: bool) -> Reuse:
    """The reuse for prompt given what the cache holds. At least the prompt's last token
    is always computed again: its logits are what the first answer token comes from."""
    keep = min(common_prefix(cached, prompt), len(prompt) - 1)
    if keep == len(cached):
        return Reuse(keep, cut=False, rebuild=False)  # the cache continues as it is
    if keep > 0 and can_cut:
        return Reuse(keep, cut=True, rebuild=False)
    return Reuse(0, cut=False, rebuild=True)


def choose_donor(prompt: Sequence[int], own: Sequence[int],
                 others: Sequence[tuple[Sequence[int], Sequence[int] | None]],
                 pays: Callable[[int], bool]) -> tuple[int | None, bool]:  # fmt: skip
    """Which other sequence's cache to copy before prefilling prompt, and whether to wait.

    own: what this sequence's cache holds; others: for each other sequence, what its cache
    holds (computed) and the prompt it is still prefilling (None if none); pays(n): whether
    copying saves enough to be worth it when it spares prefilling n tokens. Returns (the
    index in others to copy from, or None to keep its own; wait), where wait says a
    sequence still prefilling will soon hold a prefix worth waiting a step for."""
    have = best = common_prefix(own, prompt)
    donor, coming = None, have
    for index, (held, computing) in enumerate(others):
        shared = common_prefix(held, prompt)
        if shared > best:
            donor, best = index, shared
        if computing is not None:
            coming = max(coming, common_prefix(computing, prompt))
    if pays(coming - best):
        return None, True
    return (donor, False) if pays(best - have) else (None, False)


def can_cut_back(lib, model) -> bool:
    """Whether this model's memory can drop a tail: not for recurrent or hybrid models."""
    return not (lib.llama_model_is_recurrent(model) or lib.llama_model_is_hybrid(model))
