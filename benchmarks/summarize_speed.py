"""`localllm summarize` against the machine's own bound, measured by llama.cpp's llama-bench.

In one run, on the same model and threads: llama-bench (built from the llama.cpp
inside the pinned llama-cpp-python sdist, cached) gives pp512 and tg128
tokens/s; then `localllm summarize --json` runs on a generated chronicle (Spanish
by default, ~17,900 tokens as in the issue) in a child process, with the default
part length (chosen from the model's shape, sizing.py) and, with --compare-window, with
parts that fill the window (the old behaviour). For each it reports wall time,
the bound

    document tokens / pp512  +  summary tokens written (all passes) / tg128

and their ratio (target <= 1.3), the part count and length, the summary's
length, the share of the summary's numbers (years, counts, costs) found in the
document (a cheap check that a faster run did not start inventing facts), and the
child's peak memory. Each round runs llama-bench and then every configuration, so
each run's bound is measured minutes, not a quarter of an hour, from it (a VM's
speed drifts by 10 % and more); the round with the median ratio is reported, with
every round's wall, bound and ratio.

    python benchmarks/summarize_speed.py [MODEL] [--tokens 17857] [--lang es|en]
                                         [--compare-window] [--compare-parts N]
                                         [--parallel N] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llama_sources import llama_bench  # benchmarks/ is on the path of its scripts

from localllm.config import Settings
from localllm.engine import LoadOptions
from localllm.engine.llama import load_engine
from localllm.store.resolve import resolve_model

CACHE = Path(os.environ.get("LOCALLLM_BENCH_CACHE", Path.home() / ".cache/localllm-bench"))

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
SPANISH = (
    ["el puerto", "el viejo molino", "el ayuntamiento", "el río", "la escuela", "el mercado",
     "el ferrocarril", "la biblioteca", "el huerto", "el puente", "el museo", "la granja"],
    ["fue reconstruido", "fue descrito", "fue ampliado", "fue medido", "fue celebrado",
     "fue reparado", "fue trasladado", "fue estudiado", "fue vendido", "fue inaugurado"],
    ["tras la riada de {y}", "por una comisión de {n} personas", "con un coste de {n} reales",
     "durante el invierno de {y}", "con piedra de la cantera del norte",
     "porque el pueblo había crecido hasta {n} habitantes", "bajo la alcaldesa Elena Ruiz"],
)  # fmt: skip
DETAILS = [
    "after the flood of {y}",
    "by a committee of {n} people",
    "at a cost of {n} florins",
    "during the winter of {y}",
    "with stone from the northern quarry",
    "because the town had grown to {n} inhabitants",
    "under the mayor Elena Ruiz",
]


def make_document(path: Path, target_tokens: int, count_tokens, lang: str = "es") -> int:
    """Chronicle-style prose with varied facts, until it holds target_tokens tokens."""
    subjects, verbs, details = SPANISH if lang == "es" else (SUBJECTS, VERBS, DETAILS)
    rng = random.Random(7)
    paragraphs, tokens = [], 0
    while tokens < target_tokens:
        sentences = []
        for _ in range(rng.randint(4, 8)):
            detail = rng.choice(details).format(y=rng.randint(1700, 1950), n=rng.randint(3, 9000))
            sentences.append(f"{rng.choice(subjects).capitalize()} {rng.choice(verbs)} {detail}.")
        paragraph = " ".join(sentences)
        paragraphs.append(paragraph)
        tokens += count_tokens(paragraph) + 1
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return tokens


def summarize(doc: Path, model: str, extra: list[str]) -> tuple[dict, float, str]:
    cmd = [shutil.which("localllm") or sys.executable, "summarize", str(doc), "--json",
           "--no-cache", "-q", "-m", model, *extra]  # fmt: skip
    if not cmd[0].endswith("localllm"):
        cmd[1:1] = ["-m", "localllm"]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    return result["stats"], time.perf_counter() - started, result["summary"]


NUMBER = re.compile(r"\b\d{2,}\b")  # years, counts and costs; single digits say little


def _bound(stats: dict, rates: dict) -> float:
    return stats["document_tokens"] / rates["pp512"] + stats["summary_tokens"] / rates["tg128"]


def _median_round(results: list) -> tuple:
    """The round whose ratio to its own bound is the median (the lower of an even count)."""
    ordered = sorted(results, key=lambda r: r[1] / _bound(r[0], r[3]))
    return ordered[(len(ordered) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--tokens", type=int, default=17_857)
    parser.add_argument("--lang", choices=("es", "en"), default="es")
    parser.add_argument("--ctx", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=None)
    parser.add_argument("--compare-window", action="store_true")
    parser.add_argument(
        "--compare-parts",
        type=int,
        default=None,
        metavar="N",
        help="also run with parts of N tokens, alternating with the default",
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = Settings.from_env()
    model = resolve_model(settings, args.model)
    engine = load_engine(model.path, LoadOptions(n_ctx=args.ctx))
    threads, n_ctx = engine.plan.n_threads, engine.n_ctx
    extra = ["--ctx", str(args.ctx)] if args.ctx else []
    extra += ["--parallel", str(args.parallel)] if args.parallel else []
    configs = {"default": extra}
    if args.compare_window:
        configs["window"] = [*extra, "--part-tokens", str(n_ctx)]
    if args.compare_parts:
        configs[f"parts_{args.compare_parts}"] = [*extra, "--part-tokens", str(args.compare_parts)]
    rounds: dict[str, list] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as scratch:
        doc = Path(scratch) / "document.txt"
        make_document(doc, args.tokens, lambda t: len(engine.tokenize(t, special=False)),
                      args.lang)  # fmt: skip
        engine.close()
        for _ in range(args.rounds):
            rates = llama_bench(CACHE, model.path, threads)
            for name, flags in configs.items():
                rounds[name].append((*summarize(doc, model.name, flags), rates))
        numbers = set(NUMBER.findall(doc.read_text(encoding="utf-8")))
    runs = {name: _median_round(results) for name, results in rounds.items()}
    report = {"bench": "summarize", "model": model.name, "threads": threads, "n_ctx": n_ctx,
              "runs": {}}  # fmt: skip
    for name, (stats, wall, summary, rates) in runs.items():
        bound = _bound(stats, rates)
        cited = NUMBER.findall(summary)
        report["runs"][name] = {
            "rounds": [{"wall_s": round(r[1], 1), "bound_s": round(_bound(r[0], r[3]), 1),
                        "ratio": round(r[1] / _bound(r[0], r[3]), 3)} for r in rounds[name]],
            "llama_bench": rates,
            "summary_numbers": len(cited),
            "summary_numbers_in_document": round(sum(n in numbers for n in cited) / len(cited), 2)
            if cited else None,
            "document_tokens": stats["document_tokens"], "chunks": stats["chunks"],
            "part_tokens": stats.get("part_tokens"), "calls": stats["calls"],
            "summary_tokens": stats["summary_tokens"], "summary_words": len(summary.split()),
            "part_summary_tokens": stats.get("part_summary_tokens"), "wall_s": round(wall, 1),
            # where the wall went: the pipeline itself (not start-up and loading), and its
            # calls' prefill and decode seconds (summed: with --parallel they overlap)
            "pipeline_s": stats.get("wall_s"), "prefill_s": stats.get("prefill_s"),
            "decode_s": stats.get("decode_s"),
            "bound_s": round(bound, 1), "ratio": round(wall / bound, 3),
        }  # fmt: skip
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
