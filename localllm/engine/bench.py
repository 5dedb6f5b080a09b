"""Side-by-side speed: a bare llama_cpp decode loop against localllm's own stream.

Both sides run on the same loaded model and context (same threads, same
window), alternating round by round so machine noise hits both equally; the
median of each side is reported with their ratio. The bare side is the least
work llama.cpp can be asked to do from Python: decode, greedy-sample, repeat.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

from localllm.engine.base import Finished, SamplingParams
from localllm.engine.llama import LlamaEngine

# Plain prose, repeated to the requested prompt length; a completion of it
# rarely ends early, so both sides decode the same number of tokens.
_FILLER = (
    "The old lighthouse keeper walked the narrow path along the cliffs every evening, "
    "counting the ships that passed and writing their names in a worn leather book. "
)


@dataclass
class Speed:
    prefill_tps: float
    decode_tps: float
    decode_tokens: int


@dataclass
class BenchResult:
    model: str
    backend: str
    n_threads: int
    n_ctx: int
    rounds: int
    prompt_tokens: int
    decode_tokens: int
    bare: Speed
    localllm: Speed

    prefill_ratio: float  # median over rounds of localllm / bare, each round a side-by-side pair
    decode_ratio: float

    def as_dict(self) -> dict:
        data = asdict(self)
        del data["prefill_ratio"], data["decode_ratio"]
        data["ratio"] = {
            "prefill": round(self.prefill_ratio, 3),
            "decode": round(self.decode_ratio, 3),
        }
        return data


def bench_prompt(engine: LlamaEngine, n_tokens: int) -> list[int]:
    text = _FILLER * (n_tokens // 20 + 2)
    return engine.tokenize(text, special=False)[:n_tokens]


def _decode(lib, ctx, tokens: list[int]) -> None:
    # The array must outlive llama_decode: the batch only points into it.
    array = (lib.llama_token * len(tokens))(*tokens)
    if lib.llama_decode(ctx, lib.llama_batch_get_one(array, len(tokens))) != 0:
        raise RuntimeError("llama_decode failed in the bare benchmark loop")


def bare_round(engine: LlamaEngine, prompt: list[int], n_decode: int) -> Speed:
    """Prefill and greedy-decode with llama_cpp's C API directly."""
    import llama_cpp as lib

    ctx = engine._llm._ctx.ctx
    n_batch = engine._llm.n_batch
    engine.reset()
    sampler = lib.llama_sampler_init_greedy()
    try:
        started = time.perf_counter()
        for i in range(0, len(prompt), n_batch):
            _decode(lib, ctx, prompt[i : i + n_batch])
        token = lib.llama_sampler_sample(sampler, ctx, -1)
        first_at = time.perf_counter()
        for _ in range(n_decode - 1):
            _decode(lib, ctx, [token])
            token = lib.llama_sampler_sample(sampler, ctx, -1)
        done_at = time.perf_counter()
    finally:
        lib.llama_sampler_free(sampler)
        engine.reset()  # the KV cache now holds tokens the engine does not know about
    return Speed(
        prefill_tps=len(prompt) / (first_at - started),
        decode_tps=(n_decode - 1) / (done_at - first_at),
        decode_tokens=n_decode,
    )


def localllm_round(engine: LlamaEngine, prompt: list[int], n_decode: int) -> Speed:
    """The same work through engine.stream, the path every command uses."""
    engine.reset()
    params = SamplingParams(max_tokens=n_decode, temperature=0.0, seed=0)
    for event in engine.stream(prompt, params):
        if isinstance(event, Finished):
            s = event.stats
            return Speed(s.prefill_tps, s.decode_tps, s.completion_tokens)
    raise AssertionError("stream ended without Finished")


def run_bench(
    engine: LlamaEngine,
    model_name: str,
    *,
    prompt_tokens: int = 256,
    decode_tokens: int = 128,
    rounds: int = 3,
    on_round=None,
) -> BenchResult:
    """Alternate bare and localllm rounds (after one warm-up each); report medians."""
    prompt_tokens = max(8, min(prompt_tokens, engine.n_ctx - decode_tokens - 8))
    prompt = bench_prompt(engine, prompt_tokens)
    bare_round(engine, prompt[:16], 4)  # warm-up: page in weights, build kernels
    localllm_round(engine, prompt[:16], 4)
    bare: list[Speed] = []
    ours: list[Speed] = []
    for i in range(rounds):
        # Alternate which side goes first, so neither always runs on a warmer machine.
        sides = [(bare, bare_round), (ours, localllm_round)]
        for results, fn in sides if i % 2 == 0 else reversed(sides):
            results.append(fn(engine, prompt, decode_tokens))
        if on_round:
            on_round(i + 1, rounds)

    def median(speeds: list[Speed]) -> Speed:
        return Speed(
            prefill_tps=round(statistics.median(s.prefill_tps for s in speeds), 2),
            decode_tps=round(statistics.median(s.decode_tps for s in speeds), 2),
            decode_tokens=min(s.decode_tokens for s in speeds),
        )

    def paired_ratio(phase: str) -> float:
        # Each round's pair ran back to back, so their ratio cancels slow drift in load.
        ratios = [getattr(o, phase) / getattr(b, phase) for o, b in zip(ours, bare, strict=True)]
        return statistics.median(ratios)

    return BenchResult(
        model=model_name,
        backend=engine.backend,
        n_threads=engine.plan.n_threads,
        n_ctx=engine.n_ctx,
        rounds=rounds,
        prompt_tokens=len(prompt),
        decode_tokens=decode_tokens,
        bare=median(bare),
        localllm=median(ours),
        prefill_ratio=paired_ratio("prefill_tps"),
        decode_ratio=paired_ratio("decode_tps"),
    )
