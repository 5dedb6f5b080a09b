"""Serving throughput: `localllm serve --parallel 8` against llama.cpp's own `llama-server -np 8`.

Both serve the same model file with the same threads and context (8 slots of
--slot-ctx tokens), and are measured alternately in one run: for 1, 2, 4 and 8
concurrent streams of the same prompts (128 tokens each, greedy), aggregate
decode tokens/s (all streams' tokens over the wall time) and time to first
token p50/p95. llama-server is built from the llama.cpp sources inside the
sdist of the llama-cpp-python we pin, and cached. Also printed: `localllm
bench`'s bare llama.cpp loop (single-stream reference) and what a server that
serves one request at a time (Ollama's default, OLLAMA_NUM_PARALLEL=1) would
give: its single-stream rate, whatever the concurrency.

llama-server's default is flash attention on wherever it runs, CPUs included;
localllm serve's is on a GPU only, so --flash-attn compares the same kernels.

    python benchmarks/serve_throughput.py [--rounds 2] [--flash-attn] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
from llama_sources import built_tool, same_kernels  # benchmarks/ is on the path of its scripts

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serverproc import free_port

CACHE = Path(os.environ.get("LOCALLLM_BENCH_CACHE", Path.home() / ".cache/localllm-bench"))
LEVELS = (1, 2, 4, 8)
TOPICS = ("a dragon", "the sea", "a robot", "a city", "a garden", "a train", "the moon", "a storm")
PROMPTS = [f"Write a long story about {topic}." for topic in TOPICS]


def llama_server(cache: Path) -> Path:
    """llama-server built from the pinned sdist's llama.cpp (once; cached)."""
    return built_tool(cache, "llama-server")


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("server did not start")


async def one_stream(client: httpx.AsyncClient, url: str, model: str, prompt: str, n: int):
    body = {"model": model, "stream": True, "max_tokens": n, "temperature": 0, "seed": 1,
            "messages": [{"role": "user", "content": prompt}],
            "stream_options": {"include_usage": True}}  # fmt: skip
    started = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                if first is None and (choice.get("delta") or {}).get("content"):
                    first = time.perf_counter() - started
    return first or 0.0, tokens


async def level(url: str, model: str, streams: int, n: int) -> dict:
    async with httpx.AsyncClient(timeout=600) as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(one_stream(client, url, model, PROMPTS[i % 8], n)
                                         for i in range(streams)))  # fmt: skip
        wall = time.perf_counter() - started
    ttfts = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    return {"streams": streams, "tokens": tokens, "tok_s": tokens / wall,
            "ttft_p50": statistics.median(ttfts),
            "ttft_p95": ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))]}  # fmt: skip


def bare_loop_tps(home: str) -> float:
    env = {**os.environ, "LOCALLLM_HOME": home}
    out = subprocess.run([sys.executable, "-m", "localllm", "bench", "--json"], check=True,
                         capture_output=True, text=True, env=env)  # fmt: skip
    return json.loads(out.stdout)["bare"]["decode_tps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--slot-ctx", type=int, default=1024)
    parser.add_argument(
        "--flash-attn",
        action="store_true",
        help="serve with --flash-attn, as llama-server runs by default",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from localllm.config import Settings
    from localllm.store.resolve import resolve_model

    settings = Settings.from_env()
    model = resolve_model(settings, None)
    threads = str(os.cpu_count() or 2)
    binary = llama_server(CACHE)
    ours_port, ref_port = free_port(), free_port()
    ours = subprocess.Popen([sys.executable, "-m", "localllm", "serve", "--port", str(ours_port),
                             "-m", model.name, "--parallel", "8", "--ctx", str(args.slot_ctx),
                             *(["--flash-attn"] if args.flash_attn else [])],
                            stderr=subprocess.DEVNULL)  # fmt: skip
    ref = subprocess.Popen([binary, "-m", model.path, "--port", str(ref_port), "-np", "8",
                            "-c", str(8 * args.slot_ctx), "-t", threads, "-tb", threads,
                            *(["--no-repack"] if same_kernels() else [])],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    sides = {"localllm": (f"http://127.0.0.1:{ours_port}", model.name),
             "llama-server": (f"http://127.0.0.1:{ref_port}", model.name)}  # fmt: skip
    try:
        for (url, _), proc in zip(sides.values(), (ours, ref), strict=True):
            wait_ready(url, proc)
        for url, name in sides.values():  # warm-up: page in weights
            asyncio.run(level(url, name, 2, 16))
        rows: dict[tuple[str, int], list[dict]] = {}
        for _ in range(args.rounds):
            for streams in LEVELS:
                for side, (url, name) in sides.items():
                    rows.setdefault((side, streams), []).append(
                        asyncio.run(level(url, name, streams, args.tokens))
                    )
    finally:
        for proc in (ours, ref):
            proc.terminate()
            proc.wait(30)
    bare = bare_loop_tps(str(settings.home))
    report = summarize(rows, bare)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


def summarize(rows, bare: float) -> dict:
    def best(side, streams, key, pick=max):
        return pick(r[key] for r in rows[(side, streams)])

    out = {"bare_loop_tok_s": round(bare, 1), "levels": []}
    for streams in LEVELS:
        ours = {k: best("localllm", streams, k, max if k == "tok_s" else min)
                for k in ("tok_s", "ttft_p50", "ttft_p95")}  # fmt: skip
        ref = {k: best("llama-server", streams, k, max if k == "tok_s" else min)
               for k in ("tok_s", "ttft_p50", "ttft_p95")}  # fmt: skip
        out["levels"].append({
            "streams": streams, "localllm": ours, "llama_server": ref,
            "tok_s_ratio": round(ours["tok_s"] / ref["tok_s"], 3),
            "ttft_p95_ratio": round(ours["ttft_p95"] / ref["ttft_p95"], 3),
        })  # fmt: skip
    single = out["levels"][0]["localllm"]["tok_s"]
    out["single_stream_vs_bare"] = round(single / bare, 3) if bare else None
    out["one_at_a_time_tok_s"] = round(single, 1)  # Ollama's default: no gain from concurrency
    return out


def print_table(report: dict) -> None:
    print(f"{'streams':>7} | {'localllm tok/s':>14} {'llama-server':>12} {'ratio':>6} | "
          f"{'TTFT p50':>8} {'p95':>6} | {'ref p50':>7} {'p95':>6} {'p95 ratio':>9}")  # fmt: skip
    for row in report["levels"]:
        o, r = row["localllm"], row["llama_server"]
        print(f"{row['streams']:>7} | {o['tok_s']:>14.1f} {r['tok_s']:>12.1f} "
              f"{row['tok_s_ratio']:>6.2f} | {o['ttft_p50']:>8.2f} {o['ttft_p95']:>6.2f} | "
              f"{r['ttft_p50']:>7.2f} {r['ttft_p95']:>6.2f} "
              f"{row['ttft_p95_ratio']:>9.2f}")  # fmt: skip
    print(
        f"bare llama.cpp loop (localllm bench): {report['bare_loop_tok_s']} tok/s; "
        f"one localllm stream is {report['single_stream_vs_bare']}x of it"
    )
    print(
        f"one request at a time (Ollama's default): {report['one_at_a_time_tok_s']} tok/s "
        "aggregate at any concurrency"
    )


if __name__ == "__main__":
    main()
