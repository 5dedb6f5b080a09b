"""`localllm summarize` on a long document: in-process, and over HTTP with the parts fanned out.

Three ways to summarize the same generated document (~50,000 tokens by default), in one
run, same model, same machine, same window per request:
  - in-process (`localllm summarize`, this machine's engine);
  - `localllm serve --parallel 4` as a remote engine, summarize --parallel 4;
  - llama.cpp's llama-server -np 4 (built from the pinned sdist's llama.cpp) as the
    remote engine, summarize --parallel 4.
Prints wall time, parts, calls and the ratios between them.

    python benchmarks/remote_summarize.py [MODEL] [--tokens 50000] [--ctx 4096] [--parallel 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llama_sources import built_tool, same_kernels  # benchmarks/ is on the path of its scripts
from serve_throughput import CACHE, wait_ready
from summarize_speed import make_document

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serverproc import free_port

from localllm.config import Settings
from localllm.engine import LoadOptions
from localllm.engine.llama import load_engine
from localllm.store.resolve import resolve_model


def summarize(doc: Path, home: Path | None, args: list[str]) -> tuple[dict, float]:
    cmd = [shutil.which("localllm") or sys.executable, "summarize", str(doc), "--json",
           "--no-cache", "-q", *args]  # fmt: skip
    if not cmd[0].endswith("localllm"):
        cmd[1:1] = ["-m", "localllm"]
    env = {**os.environ, **({"LOCALLLM_HOME": str(home)} if home else {})}
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout)["stats"], time.perf_counter() - started


def engine_home(root: Path, name: str, url: str, model: str | None = None) -> Path:
    home = root / name
    (home / "config").mkdir(parents=True)
    pick = f'model = "{model}"\n' if model else ""  # else the server's first (llama-server: one)
    (home / "config" / "config.toml").write_text(f'[engines.{name}]\nurl = "{url}/v1"\n{pick}')
    return home


def serve_and_summarize(cmd: list, url: str, doc: Path, home: Path, args: list[str]):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, proc)
        return summarize(doc, home, args)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    settings = Settings.from_env()
    model = resolve_model(settings, args.model)
    engine = load_engine(model.path, LoadOptions(n_ctx=args.ctx))
    threads = engine.plan.n_threads
    server = built_tool(CACHE, "llama-server")
    n, ctx = args.parallel, args.ctx
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        doc = root / "document.txt"
        make_document(doc, args.tokens, lambda t: len(engine.tokenize(t, special=False)))
        engine.close()
        rows["in-process"] = summarize(doc, None, ["-m", model.name, "--ctx", str(ctx)])
        port = free_port()
        ours = [sys.executable, "-m", "localllm", "serve", "--port", str(port), "-m", model.name,
                "--parallel", str(n), "--ctx", str(ctx),
                "--flash-attn"]  # as llama-server's default (auto) on this CPU  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        fan_out = ["--parallel", str(n)]
        rows["localllm serve"] = serve_and_summarize(
            ours,
            url,
            doc,
            engine_home(root, "ours", url, model.name),
            ["--engine", "ours", *fan_out],
        )
        port = free_port()
        ref = [server, "-m", model.path, "--port", str(port), "-np", str(n), "-c", str(n * ctx),
               "-t", str(threads), "-tb", str(threads),
               *(["--no-repack"] if same_kernels() else [])]  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        rows["llama-server"] = serve_and_summarize(
            ref, url, doc, engine_home(root, "ref", url), ["--engine", "ref", *fan_out]
        )
    base = rows["in-process"][1]
    report = {"bench": "remote_summarize", "model": model.name, "threads": threads,
              "ctx_per_request": ctx, "parallel": n, "runs": {}}  # fmt: skip
    for name, (stats, wall) in rows.items():
        report["runs"][name] = {"wall_s": round(wall, 1), "vs_in_process": round(wall / base, 3),
                                "document_tokens": stats["document_tokens"],
                                "chunks": stats["chunks"], "calls": stats["calls"],
                                "parts_at_once": stats.get("parallel"),
                                "part_tokens": stats.get("part_tokens")}  # fmt: skip
    ours, ref = rows["localllm serve"][1], rows["llama-server"][1]
    report["serve_vs_llama_server"] = round(ours / ref, 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
