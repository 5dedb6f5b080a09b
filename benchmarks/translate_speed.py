"""`localllm translate` against the machine's own bound, measured by llama.cpp's llama-bench.

In one run, on the same model and threads: llama-bench (built from the llama.cpp
inside the pinned llama-cpp-python sdist, cached) gives pp512 and tg128 tokens/s;
then `localllm translate --json` translates a generated Spanish chronicle (~20,000
tokens) into English in a child process. The bound is the least work a
translation takes, reading the document once and writing its translation once:

    document tokens / pp512  +  translation tokens / tg128

The report gives wall time, the bound and their ratio (target <= 1.3), and where
the tokens beyond that went: the share of prompt tokens that were the previous
chunk's context, the share of output tokens spent on retries, the calls, and
the paragraphs kept untranslated.

    python benchmarks/translate_speed.py [MODEL] [--tokens 20000] [--ctx N] [--tries N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llama_sources import llama_bench  # benchmarks/ is on the path of its scripts
from summarize_speed import make_document

from localllm.config import Settings
from localllm.engine import LoadOptions
from localllm.engine.llama import load_engine
from localllm.store.resolve import resolve_model

CACHE = Path(os.environ.get("LOCALLLM_BENCH_CACHE", Path.home() / ".cache/localllm-bench"))


def translate(doc: Path, model: str, extra: list[str]) -> tuple[dict, float]:
    cmd = [shutil.which("localllm") or sys.executable, "translate", str(doc), "--to", "en",
           "--from", "es", "--json", "--no-cache", "-q", "-m", model, *extra]  # fmt: skip
    if not cmd[0].endswith("localllm"):
        cmd[1:1] = ["-m", "localllm"]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--ctx", type=int, default=None)
    parser.add_argument("--tries", type=int, default=None)
    args = parser.parse_args()
    model = resolve_model(Settings.from_env(), args.model)
    engine = load_engine(model.path, LoadOptions(n_ctx=args.ctx))
    threads, n_ctx = engine.plan.n_threads, engine.n_ctx
    count = lambda text: len(engine.tokenize(text, special=False, add_bos=False))  # noqa: E731
    rates = llama_bench(CACHE, model.path, threads)
    extra = ["--ctx", str(args.ctx)] if args.ctx else []
    extra += ["--tries", str(args.tries)] if args.tries else []
    with tempfile.TemporaryDirectory() as scratch:
        doc = Path(scratch) / "cronica.txt"
        make_document(doc, args.tokens, count, "es")
        document_tokens = count(doc.read_text(encoding="utf-8"))
        result, wall = translate(doc, model.name, extra)
    translation_tokens = count(result["translation"])
    engine.close()
    stats = result["stats"]
    bound = document_tokens / rates["pp512"] + translation_tokens / rates["tg128"]
    report = {
        "bench": "translate", "model": model.name, "threads": threads, "n_ctx": n_ctx,
        "llama_bench": rates, "document_tokens": document_tokens,
        "translation_tokens": translation_tokens, "wall_s": round(wall, 1),
        "bound_s": round(bound, 1), "ratio": round(wall / bound, 3),
        "calls": stats["calls"], "retry_calls": stats["retry_calls"],
        "chunk_tokens": stats["chunk_tokens"], "prompt_tokens": stats["prompt_tokens"],
        "output_tokens": stats["output_tokens"],
        "context_share_of_prompt": stats["context_share"],
        "retry_share_of_output": stats["retry_share"],
        "untranslated_parts": stats["untranslated"], "parts": stats["parts"],
        "model_time_s": round(stats["prefill_s"] + stats["decode_s"], 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
