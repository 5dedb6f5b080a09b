"""llama.cpp sampler chains and token log-probabilities, shared by the one-sequence
engine (engine/llama.py) and the batching engine (engine/batch.py)."""

from __future__ import annotations

import numpy as np

from localllm.engine.base import SamplingParams, TokenLogprob
from localllm.errors import GrammarError

REPEAT_WINDOW = 64  # tokens the repeat penalty looks back over (llama-cpp-python's default)


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
