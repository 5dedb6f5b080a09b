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
import threading
from dataclasses import dataclass

import numpy as np

GAMMA = 0.25
DELTA = 2.0
CONTEXT = 4
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_SALT = np.uint64(0x9E3779B97F4A7C15)
_S1, _S2, _S3 = np.uint64(30), np.uint64(27), np.uint64(31)
VECTOR_BYTES = 8 * 2**20  # ready bias vectors kept for generation (a float32 per token)
PACKED_BYTES = 16 * 2**20  # packed green lists kept besides (a bit per token)


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
    return _mix_in_place(x.copy(), np.empty_like(x))


def _mix_in_place(x: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """_mix on x itself, with tmp as scratch: no whole-vocabulary temporaries to allocate."""
    for shift, multiplier in ((_S1, _M1), (_S2, _M2), (_S3, None)):
        np.right_shift(x, shift, out=tmp)
        np.bitwise_xor(x, tmp, out=x)
        if multiplier is not None:
            np.multiply(x, multiplier, out=x)
    return x


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
        self._hashes: list[int] | None = None  # _token_hash as Python ints, made on first use
        self._lists = GreenLists(self, n_vocab)

    def seed(self, context: list[int]) -> int:
        """The green list's seed after these tokens: the least keyed hash of the recent ones.

        On Python ints: generation asks once a token, where a numpy call runs cold."""
        if self._hashes is None:
            self._hashes = self._token_hash.tolist()
        hashes, n_vocab = self._hashes, self.n_vocab
        recent = [hashes[t] for t in context[-self.spec.context :] if 0 <= t < n_vocab]
        return min(recent) if recent else 2**64 - 1

    def green(self, context: list[int]) -> np.ndarray:
        """Which tokens are green after these preceding tokens (a bool per vocabulary entry)."""
        seed = np.uint64(self.seed(context))
        with np.errstate(over="ignore"):
            return _mix(np.minimum(self._token_hash, seed) ^ self._candidate) < self._threshold

    def bias(self, logits: np.ndarray, context: list[int]) -> None:
        """Add delta to the green logits, in place (a view of llama.cpp's logits row).

        This runs between two decodes, with the CPU caches full of the model's weights, where
        every Python and numpy call costs tens of microseconds: a kept list is one add."""
        np.add(logits, self._lists.bias_vector(self.seed(context)), out=logits)

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


class GreenLists:
    """Green lists by seed, for generation.

    The seed is the hash of one of the last few tokens, so lists recur within a text and
    across texts. The most recent are kept as ready bias vectors (delta on green, 0 on red:
    one add per token), the older packed (a bit per token), each tier within a byte budget,
    the least recently used dropped first. A new list is hashed in place in two scratch
    vectors: allocating the temporaries of eight whole-vocabulary operations costs more than
    their arithmetic."""

    def __init__(self, mark: Watermark, n_vocab: int):
        self._mark = mark
        self._n_vocab = n_vocab
        self._delta = np.float32(mark.spec.delta)
        self._vectors: dict[int, np.ndarray] = {}
        self._packed: dict[int, np.ndarray] = {}
        self._most_vectors = max(4, VECTOR_BYTES // (4 * n_vocab))
        self._most_packed = max(16, PACKED_BYTES // ((n_vocab + 7) // 8))
        self._work = np.empty(n_vocab, dtype=np.uint64)
        self._spare = np.empty(n_vocab, dtype=np.uint64)
        self._flags = np.empty(n_vocab, dtype=bool)
        self._lock = threading.Lock()  # one key's lists serve every engine in the process

    def bias_vector(self, seed: int) -> np.ndarray:
        """delta where a token is green under this seed, 0 elsewhere (float32)."""
        with self._lock:
            vector = self._vectors.pop(seed, None)
            if vector is None:
                packed = self._packed.pop(seed, None)
                if packed is None:
                    packed = self._make(seed)
                _keep(self._packed, seed, packed, self._most_packed)
                vector = np.unpackbits(packed, count=self._n_vocab).astype(np.float32)
                vector *= self._delta
            _keep(self._vectors, seed, vector, self._most_vectors)
        return vector

    def _make(self, seed: int) -> np.ndarray:
        mark, x = self._mark, self._work
        np.minimum(mark._token_hash, np.uint64(seed), out=x)
        np.bitwise_xor(x, mark._candidate, out=x)
        np.less(_mix_in_place(x, self._spare), mark._threshold, out=self._flags)
        return np.packbits(self._flags)


def _keep(kept: dict, key, value, most: int) -> None:
    """Put value last (the most recent), dropping the least recent beyond `most`."""
    kept[key] = value
    if len(kept) > most:
        kept.pop(next(iter(kept)))


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
