"""Decode and prefill speed through localllm vs a bare llama_cpp loop, plus CLI start-up.

Prints one JSON object per measurement. Both speed sides run in this one
process on the same loaded model, alternating rounds (see localllm.engine.bench);
`localllm --help` start-up is timed over several runs and its median reported.

    python benchmarks/decode_overhead.py [MODEL] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

from localllm.config import Settings
from localllm.engine.bench import run_bench
from localllm.engine.llama import load_engine
from localllm.store.resolve import resolve_model


def help_wall_time(runs: int = 7) -> float:
    exe = shutil.which("localllm") or sys.executable
    cmd = [exe, "--help"] if exe.endswith("localllm") else [exe, "-m", "localllm", "--help"]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = resolve_model(Settings.from_env(), args.model)
    engine = load_engine(model.path)
    result = run_bench(engine, model.name, rounds=args.rounds)
    for phase in ("prefill", "decode"):
        print(json.dumps({
            "bench": phase,
            "model": model.name,
            "localllm_tps": getattr(result.localllm, f"{phase}_tps"),
            "bare_tps": getattr(result.bare, f"{phase}_tps"),
            "ratio": round(getattr(result, f"{phase}_ratio"), 3),
            "rounds": args.rounds,
            "threads": result.n_threads,
        }))  # fmt: skip
    print(json.dumps({"bench": "help_startup", "median_s": round(help_wall_time(), 3)}))


if __name__ == "__main__":
    main()
