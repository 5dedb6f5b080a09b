"""How long a summary's parts should be, and how long each part's summary may grow.

Filling the window is the slow choice for small models: a token's attention
grows with the prompt before it, and at a few thousand tokens it costs a
small model as much as its weights (SmolLM2-135M prefills 285 tok/s at 512
tokens, 186 tok/s 1,536 tokens in, 141 tok/s 3,072 in). Each part's summary
is written at decode speed, deep in that part, and read again when merging,
so it is kept to about a share of its part (1/PART_SUMMARY_SHARE, within
96-256 tokens): then for parts of 768-2,048 tokens the summary tokens per
document token are the same whatever the part length, and what remains to
trade on a CPU is the prefill. For parts of c tokens, each with o tokens
of prompt that every part prefills again, the prefill time per document token
is proportional to

    (1 + o / c) (1 + c / 2P)

where P = parameters / (2 · layers · width) is the depth at which a token's
attention costs as much as its matrix products. It is least at c = sqrt(2 P o),
kept between MIN_PART_TOKENS and what the window holds. o is what differs from
part to part: the instructions come before the part (prompts.py), so engines
compute them once per slot, and each part repeats only the template's closing
tokens. That puts most models at the floor: parts shorter than it would get
summaries longer than their share (the summary floor), which cost decoding
now and reading again when merging. Measured on SmolLM2-135M, 18k tokens,
2 cores: parts of 768 tokens took 97.6-103.6 s where the whole prompt as o
(929-token parts) took 104.7-107.2 s.
"""

from __future__ import annotations

PART_SUMMARY_SHARE = 8  # a part's summary gets 1/8 of its tokens...
MIN_PART_SUMMARY = 96  # ...but never fewer than this (nor more than a reply may take)
MIN_PART_TOKENS = PART_SUMMARY_SHARE * MIN_PART_SUMMARY  # shorter: summaries over their share


def attention_half_depth(info) -> float | None:
    """P: the prompt depth at which attention costs a token as much as its weights."""
    layers = info.block_count
    width = info.get(f"{info.architecture}.embedding_length")
    params = info.parameter_count
    if not layers or not width or not params:
        return None
    return params / (2 * layers * int(width))


def part_tokens(most: int, info, prompt_overhead: int, *, on_gpu: bool = False) -> int:
    """The part length (tokens) that reads a long document soonest, at most `most`;
    prompt_overhead: the prompt tokens every part prefills again besides its text.

    On a GPU prefill is far faster than decoding, so what the parts' summaries cost decides:
    a window-long part's summary is capped well below an eighth of it, so the window wins."""
    depth = attention_half_depth(info)
    if depth is None or on_gpu:
        return most
    best = (2 * depth * max(1, prompt_overhead)) ** 0.5
    return int(max(min(MIN_PART_TOKENS, most), min(most, best)))


def part_summary_tokens(part: int, most: int) -> int:
    """The reply budget of a part of `part` tokens: a share of it, within [96, most]."""
    return max(min(MIN_PART_SUMMARY, most), min(most, part // PART_SUMMARY_SHARE))
