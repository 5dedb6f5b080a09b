"""Quantizer throughput, peak memory and the quality table, on the exported starter checkpoint.

Exports the starter model (SmolLM2-135M-Instruct) as a bf16 Hugging Face
checkpoint, then converts it to each type in a fresh child process pinned to
one core, measuring wall time (input MB per second) and the child's peak RSS.
The streaming target is peak RSS <= 300 MB + 3 x the largest tensor (as f32).
Finally perplexity and KL divergence of each type against the lossless bf16
conversion on the held-out text.

    python benchmarks/quantize_speed.py [--types f16,q8_0,q4_k_m] [--no-quality]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from localllm.config import Settings
from localllm.quality import evaluate, heldout_text
from localllm.store.resolve import resolve_model
from quantize.checkpoint import open_checkpoint
from quantize.export import export_checkpoint

CHILD = (
    "import sys; from pathlib import Path; from quantize.pipeline import quantize; "
    "from quantize.formats import output_type; "
    "quantize(Path(sys.argv[1]), Path(sys.argv[2]), output_type(sys.argv[3]))"
)
QUALITY_TYPES = ["f16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"]


def convert_in_child(folder: Path, out: Path, kind: str) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one conversion in a process pinned to core 0."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), str(out), kind],
        preexec_fn=lambda: os.sched_setaffinity(0, {0}),
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"conversion to {kind} failed")
    return time.perf_counter() - started, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", default="f16,q8_0,q4_k_m")
    parser.add_argument("--no-quality", action="store_true")
    args = parser.parse_args()

    starter = resolve_model(Settings.from_env(), None).path
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = export_checkpoint(starter, work / "SmolLM2-135M-Instruct", dtype="BF16")
        ckpt = open_checkpoint(folder)
        input_mb = ckpt.input_bytes / 1e6
        largest = max(int(np.prod(t.shape)) * 4 for t in ckpt.tensors.values())
        budget = 300e6 + 3 * largest
        print(f"checkpoint: {input_mb:.0f} MB bf16, largest tensor {largest / 1e6:.0f} MB as f32,"
              f" RSS budget {budget / 1e6:.0f} MB")  # fmt: skip
        print(f"{'type':8} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12} {'of budget':>10}")
        for kind in args.types.split(","):
            seconds, rss = convert_in_child(folder, work / f"{kind}.gguf", kind)
            print(f"{kind:8} {seconds:8.2f} {input_mb / seconds:7.1f} {rss / 1e6:12.0f}"
                  f" {rss / budget:10.2f}")  # fmt: skip
        if args.no_quality:
            return
        reference = work / "bf16.gguf"
        convert_in_child(folder, reference, "bf16")
        print(f"\n{'type':8} {'size MB':>8} {'ppl':>8} {'vs bf16':>8} {'KL mean':>8} {'top-1':>7}")
        for kind in QUALITY_TYPES:
            path = work / f"{kind}.gguf"
            if not path.exists():
                convert_in_child(folder, path, kind)
            r = evaluate(path, heldout_text(), reference)
            print(f"{kind:8} {path.stat().st_size / 1e6:8.1f} {r.perplexity:8.3f}"
                  f" {(r.perplexity / r.reference_perplexity - 1) * 100:+7.2f}%"
                  f" {r.kl_mean:8.4f} {r.top1_agreement * 100:6.1f}%")  # fmt: skip
        print(f"(bf16 reference perplexity {r.reference_perplexity:.3f}, "
              f"{r.tokens_scored} tokens scored)")  # fmt: skip


if __name__ == "__main__":
    main()
