"""llama.cpp sampler chains and token log-probabilities, shared by the one-sequence
engine (engine/llama.py) and the batching engine (engine/batch.py)."""

from __future__ import annotations

import ctypes

import numpy as np

from localllm.engine.base import SamplingParams, TokenLogprob
from localllm.errors import GrammarError

REPEAT_WINDOW = 64  # tokens the repeat penalty looks back over (llama-cpp-python's default)
VIEWS_KEPT = 256  # logits rows' numpy views, by address


class LogitRows:
    """Writable numpy views of llama.cpp's logits rows, made once per row address.

    Between two decodes the model's weights have streamed through the CPU caches, so the
    interpreter's and numpy's code run cold: making a view with np.ctypeslib.as_array then
    costs ~100 us a token, more than the watermark's arithmetic on it. llama.cpp keeps the
    rows in one buffer whose addresses recur, so a view is made once per address. A view is
    only handed out for an address llama.cpp has just returned, so a buffer it reallocated
    can never leave a stale view in use."""

    def __init__(self, lib, ctx, n_vocab: int):
        address = ctypes.cast(lib.llama_get_logits_ith, ctypes.c_void_p).value
        # the same C function, declared to return the address as a plain int
        self._row_address = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p,
                                             ctypes.c_int32)(address)  # fmt: skip
        self._ctx = ctx
        self._n_vocab = n_vocab
        self._views: dict[int, np.ndarray] = {}

    def row(self, index: int) -> np.ndarray:
        address = self._row_address(self._ctx, index)
        view = self._views.get(address)
        if view is None:
            if len(self._views) >= VIEWS_KEPT:
                self._views.clear()
            buffer = (ctypes.c_float * self._n_vocab).from_address(address)
            view = self._views[address] = np.frombuffer(buffer, dtype=np.float32)
        return view


def make_sampler(lib, vocab, n_vocab: int, params: SamplingParams, seed: int):
    """llama.cpp's sampler chain for params (the order llama-cpp-python uses).

    A grammar goes first, so every later step only sees tokens the grammar allows;
    the chain accepts each sampled token into the grammar itself.
    """
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    add = lib.llama_sampler_chain_add
    if params.grammar:
        grammar = lib.llama_sampler_init_grammar(vocab, params.grammar.encode(), b"root")
        if not grammar:
            lib.llama_sampler_free(chain)
            raise GrammarError("llama.cpp could not parse the grammar made for this request")
        add(chain, grammar)
    if params.repeat_penalty != 1.0:
        # The vendored llama.cpp takes n_vocab first (it sizes the penalty's token
        # table), as llama-cpp-python declares it: pass the real vocabulary size.
        add(chain, lib.llama_sampler_init_penalties(n_vocab, REPEAT_WINDOW,
                                                    params.repeat_penalty, 0.0, 0.0))  # fmt: skip
    if params.temperature <= 0:
        add(chain, lib.llama_sampler_init_greedy())
        return chain
    add(chain, lib.llama_sampler_init_top_k(params.top_k))
    add(chain, lib.llama_sampler_init_top_p(params.top_p, 1))
    add(chain, lib.llama_sampler_init_min_p(params.min_p, 1))
    add(chain, lib.llama_sampler_init_temp(params.temperature))
    add(chain, lib.llama_sampler_init_dist(seed))
    return chain


def token_logprob(lib, ctx, index: int, n_vocab: int, token: int, n_top: int, piece):
    """The model's log-probability of token at batch row index, and the n_top most likely.

    piece(token) -> its text. Read before the next decode overwrites the logits.
    """
    pointer = lib.llama_get_logits_ith(ctx, index)
    logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,)).astype(np.float64)
    top = logits.max()
    logprobs = logits - top - np.log(np.exp(logits - top).sum())
    best = np.argpartition(-logprobs, n_top)[:n_top] if n_top else []
    ranked = sorted(((float(logprobs[i]), int(i)) for i in best), reverse=True)
    return TokenLogprob(
        token=piece(token),
        logprob=float(logprobs[token]),
        top=tuple((piece(i), lp) for lp, i in ranked),
    )
