"""The green-list watermark of Kirchenbauer et al. (ICML 2023, arXiv 2301.10226).

At each step a secret key and the last `context` tokens split the vocabulary
into a green share gamma and a red rest; green logits get +delta before
sampling, so a watermarked text holds more green tokens than chance, which a
detector that knows the key can count: z = (G - gamma T) / sqrt(T gamma (1-gamma)).

The split is the authors' recommended "self-hash" scheme (Kirchenbauer et al.,
"On the Reliability of Watermarks", 2023): the seed is the minimum, over the
context tokens and the candidate token itself, of a keyed hash of each token,
and the candidate is green when a keyed hash of (seed, candidate) falls below
gamma. Everything is integer arithmetic on numpy arrays over the whole
vocabulary at once (no Python loop per token), so the bias costs a few vector
operations per generated token. The bias goes on the raw logits, before any
sampler (grammar, penalties, top-k, temperature or greedy) sees them.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np

GAMMA = 0.25
DELTA = 2.0
CONTEXT = 4
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_SALT = np.uint64(0x9E3779B97F4A7C15)
MASKS_KEPT = 256  # green lists by seed: the seed is one recent token's hash, so they recur


@dataclass(frozen=True)
class WatermarkSpec:
    """What generation needs: the key (secret bytes) and the scheme's parameters."""

    key: bytes
    gamma: float = GAMMA
    delta: float = DELTA
    context: int = CONTEXT

    def __repr__(self) -> str:  # the key never reaches a log or a traceback
        return f"WatermarkSpec(gamma={self.gamma}, delta={self.delta}, context={self.context})"


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread 64-bit hash of each element (wrapping)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


class Watermark:
    """The green lists of one key over one vocabulary."""

    def __init__(self, spec: WatermarkSpec, n_vocab: int):
        self.spec = spec
        seed = int.from_bytes(hashlib.sha256(b"localllm-watermark-1" + spec.key).digest()[:8],
                              "little")  # fmt: skip
        ids = np.arange(n_vocab, dtype=np.uint64)
        with np.errstate(over="ignore"):
            self._token_hash = _mix(ids ^ np.uint64(seed))  # keyed hash of every token
            self._candidate = _mix(ids * _SALT ^ np.uint64(seed >> 1))
        self._threshold = np.uint64(min(int(spec.gamma * 2**64), 2**64 - 1))
        self.n_vocab = n_vocab
        self._by_seed: dict[int, np.ndarray] = {}  # seed -> indices of its green tokens

    def green(self, context: list[int]) -> np.ndarray:
        """Which tokens are green after these preceding tokens (a bool per vocabulary entry)."""
        recent = [t for t in context[-self.spec.context :] if 0 <= t < self.n_vocab]
        seed = self._token_hash[recent].min() if recent else np.uint64(2**64 - 1)
        with np.errstate(over="ignore"):
            return _mix(np.minimum(self._token_hash, seed) ^ self._candidate) < self._threshold

    def bias(self, logits: np.ndarray, context: list[int]) -> None:
        """Add delta to the green logits, in place (a view of llama.cpp's logits row).

        The green list depends on the context only through its seed, which is the hash of
        one of the last few tokens: lists are kept by seed, so most steps cost one add."""
        recent = [t for t in context[-self.spec.context :] if 0 <= t < self.n_vocab]
        seed = int(self._token_hash[recent].min()) if recent else 2**64 - 1
        green = self._by_seed.get(seed)
        if green is None:
            green = np.flatnonzero(self.green(context)).astype(np.int32)
            if len(self._by_seed) >= MASKS_KEPT:
                self._by_seed.pop(next(iter(self._by_seed)))  # the oldest
            self._by_seed[seed] = green
        logits[green] += np.float32(self.spec.delta)

    def green_flags(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each token after the first `context`: whether it is green given those before,
        and the seed its green list came from."""
        h = self.spec.context
        if len(tokens) <= h:
            return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.uint64)
        hashes = self._token_hash[tokens]
        windows = np.lib.stride_tricks.sliding_window_view(hashes[:-1], h)  # the h before each
        seeds = np.minimum(windows.min(axis=1), hashes[h:])
        with np.errstate(over="ignore"):
            return _mix(seeds ^ self._candidate[tokens[h:]]) < self._threshold, seeds


@functools.lru_cache(maxsize=8)
def watermark_for(spec: WatermarkSpec, n_vocab: int) -> Watermark:
    return Watermark(spec, n_vocab)


@dataclass(frozen=True)
class Score:
    tokens: int  # scored: after the first `context`, each repeated n-gram once
    green: int
    z: float
    p_value: float


def score(spec: WatermarkSpec, n_vocab: int, tokens: list[int]) -> Score:
    """How green tokens are, each (seed, token) pair counted once.

    Whether a token is green is a function of its seed and itself, so two places with the
    same pair are one trial, not two: counting them once (the authors' advice to count
    repeated n-grams once, where the n-gram is what the hash saw) keeps human text, with
    its frequent words, at chance."""
    mark = watermark_for(spec, n_vocab)
    array = np.asarray([t for t in tokens if 0 <= t < n_vocab], dtype=np.int64)
    flags, seeds = mark.green_flags(array)
    pairs = {}
    for seed, token, flag in zip(seeds.tolist(), array[spec.context :].tolist(), flags.tolist(),
                                 strict=True):  # fmt: skip
        pairs.setdefault((seed, token), flag)
    count, green = len(pairs), sum(pairs.values())
    if count == 0:
        return Score(0, 0, 0.0, 1.0)
    gamma = spec.gamma
    z = (green - gamma * count) / math.sqrt(count * gamma * (1 - gamma))
    return Score(count, green, z, 0.5 * math.erfc(z / math.sqrt(2)))
