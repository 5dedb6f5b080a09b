"""Pull throughput against `curl -o`, and the bytes a remote fit estimate reads.

Serves a real GGUF file from the loopback hub the tests use (tests/hubserver.py),
then alternates rounds of `curl -o` and localllm's downloader (fresh cache each
time, sha256 verified as it arrives), reporting median seconds and the ratio of
throughputs (localllm / curl). Then reads the remote header for a fit estimate
and reports the bytes fetched as a ratio to the header size (its data offset).

    python benchmarks/pull_throughput.py [PATH.gguf] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hubserver import serve_hub

from localllm.config import Settings
from localllm.progress import SilentProgress
from localllm.store import hub
from localllm.store.pull import remote_fit
from localllm.store.resolve import resolve_model

REPO, FILE = "bench/Model-GGUF", "model-Q4_1.gguf"


def time_curl(url: str, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "-o", str(out), url], check=True)
    return time.perf_counter() - started


def time_localllm(settings: Settings) -> float:
    started = time.perf_counter()
    remote = hub.remote_file(settings, REPO, FILE)
    hub.download(settings, remote, SilentProgress())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    path = args.path or resolve_model(Settings.from_env(), None).path
    size = path.stat().st_size
    with serve_hub() as server, tempfile.TemporaryDirectory() as scratch:
        server.add_file(REPO, FILE, path)
        url = f"{server.url}/{REPO}/resolve/main/{FILE}"
        curl_s, ours_s = [], []
        for i in range(args.rounds):
            home = Path(scratch) / f"home{i}"
            settings = Settings.from_env({"LOCALLLM_HOME": str(home), "HF_ENDPOINT": server.url})
            sides = [lambda: curl_s.append(time_curl(url, Path(scratch) / "curl.out")),
                     lambda s=settings: ours_s.append(time_localllm(s))]  # fmt: skip
            for run in sides if i % 2 == 0 else reversed(sides):
                run()
            shutil.rmtree(home, ignore_errors=True)
        curl, ours = statistics.median(curl_s), statistics.median(ours_s)
        print(json.dumps({
            "bench": "pull_throughput", "file_bytes": size, "rounds": args.rounds,
            "curl_s": round(curl, 3), "localllm_s": round(ours, 3),
            "curl_MBps": round(size / curl / 1e6, 1), "localllm_MBps": round(size / ours / 1e6, 1),
            "ratio": round(curl / ours, 3),
        }))  # fmt: skip
        settings = Settings.from_env({"LOCALLLM_HOME": scratch, "HF_ENDPOINT": server.url})
        remote = hub.remote_file(settings, REPO, FILE)
        server.reset_log()
        _, info = remote_fit(settings, remote, None)
        fetched = server.bytes_sent()
        print(json.dumps({
            "bench": "remote_header", "header_bytes": info.data_offset, "fetched_bytes": fetched,
            "requests": len(server.requests), "ratio": round(fetched / info.data_offset, 3),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
