"""`localllm summarize` on a ~50,000-token document against the engine's own speed bound.

Measures, in one run: the engine's prefill and decode tokens/s on the model
(localllm bench's paired rounds, with the prompt as long as a summary chunk),
then runs `localllm summarize --json` on a generated document in a child process
and reports its wall time, the bound
    document tokens / prefill rate + summary tokens written (all passes) / decode rate
and their ratio, plus the child's peak memory (RSS).

    python benchmarks/summarize_speed.py [--tokens 50000] [--ctx N]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localllm.config import Settings
from localllm.engine import LoadOptions
from localllm.engine.bench import run_bench
from localllm.engine.llama import load_engine
from localllm.store.resolve import resolve_model

SUBJECTS = [
    "the harbour",
    "the old mill",
    "the council",
    "the river",
    "the school",
    "the market",
    "the railway",
    "the library",
    "the orchard",
    "the bridge",
    "the museum",
    "the farm",
]
VERBS = [
    "was rebuilt",
    "was described",
    "was extended",
    "was measured",
    "was celebrated",
    "was repaired",
    "was moved",
    "was studied",
    "was sold",
    "was opened",
]
DETAILS = [
    "after the flood of {y}",
    "by a committee of {n} people",
    "at a cost of {n} florins",
    "during the winter of {y}",
    "with stone from the northern quarry",
    "because the town had grown to {n} inhabitants",
    "under the mayor Elena Ruiz",
]


def make_document(path: Path, target_tokens: int, count_tokens) -> int:
    """Chronicle-style prose with varied facts, until it holds target_tokens tokens."""
    rng = random.Random(7)
    paragraphs, tokens = [], 0
    while tokens < target_tokens:
        sentences = []
        for _ in range(rng.randint(4, 8)):
            detail = rng.choice(DETAILS).format(y=rng.randint(1700, 1950), n=rng.randint(3, 9000))
            sentences.append(f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {detail}.")
        paragraph = " ".join(sentences)
        paragraphs.append(paragraph)
        tokens += count_tokens(paragraph) + 1
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--ctx", type=int, default=None)
    args = parser.parse_args()
    settings = Settings.from_env()
    model = resolve_model(settings, args.model)
    engine = load_engine(model.path, LoadOptions(n_ctx=args.ctx))
    with tempfile.TemporaryDirectory() as scratch:
        doc = Path(scratch) / "document.txt"
        make_document(doc, args.tokens, lambda t: len(engine.tokenize(t, special=False)))
        from localllm.summarize.pipeline import SAFETY_TOKENS

        chunk = engine.n_ctx - 256 - 128 - SAFETY_TOKENS  # about a map call's prompt
        speed = run_bench(engine, model.name, prompt_tokens=chunk, decode_tokens=128, rounds=3)
        engine.close()
        cmd = [shutil.which("localllm") or sys.executable, "summarize", str(doc), "--json",
               "--no-cache", "-q", "-m", model.name]  # fmt: skip
        if not cmd[0].endswith("localllm"):
            cmd[1:1] = ["-m", "localllm"]
        if args.ctx:
            cmd += ["--ctx", str(args.ctx)]
        started = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
    stats = json.loads(out.stdout)["stats"]
    prefill, decode = speed.localllm.prefill_tps, speed.localllm.decode_tps
    bound = stats["document_tokens"] / prefill + stats["summary_tokens"] / decode
    print(json.dumps({
        "bench": "summarize", "model": model.name, "n_ctx": stats["n_ctx"],
        "document_tokens": stats["document_tokens"], "chunks": stats["chunks"],
        "calls": stats["calls"], "summary_tokens": stats["summary_tokens"],
        "prefill_tps": prefill, "decode_tps": decode, "wall_s": round(wall, 1),
        "bound_s": round(bound, 1), "ratio": round(wall / bound, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
