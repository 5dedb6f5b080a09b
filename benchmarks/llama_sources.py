"""llama.cpp's sources as vendored in the sdist of the llama-cpp-python we pin, extracted once:
the reference tools the benchmarks build or run come from the same llama.cpp we link."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

PIN = "llama-cpp-python==0.3.36"


def vendored_llama_cpp(cache: Path, source: Path) -> Path:
    """source, filled with the sdist's vendor/llama.cpp unless it already holds it."""
    if (source / "CMakeLists.txt").exists():
        return source
    sdist = cache / "sdist"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                    ":all:", "-d", str(sdist), PIN], check=True)  # fmt: skip
    (archive,) = sdist.glob("llama_cpp_python-*.tar.gz")
    with tarfile.open(archive) as tar:
        prefix = tar.getnames()[0].split("/")[0] + "/vendor/llama.cpp/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        for member in members:
            member.name = member.name[len(prefix) :]
        tar.extractall(source, members=[m for m in members if m.name], filter="data")
    return source


def built_tool(cache: Path, target: str) -> Path:
    """A llama.cpp tool (llama-server, llama-bench, ...) built from those sources, cached."""
    import os

    source = cache / "llama.cpp"
    binary = source / "build" / "bin" / target
    if binary.exists():
        return binary
    vendored_llama_cpp(cache, source)
    print(f"+ building {target} from the pinned llama.cpp (once)", file=sys.stderr)
    subprocess.run(["cmake", "-S", str(source), "-B", str(source / "build"),
                    "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                    "-DLLAMA_BUILD_EXAMPLES=OFF"], check=True)  # fmt: skip
    subprocess.run(["cmake", "--build", str(source / "build"), "--target", target, "-j",
                    str(os.cpu_count() or 2)], check=True)  # fmt: skip
    return binary


def same_kernels() -> bool:
    """Whether the reference tools must leave out llama.cpp's extra buffer types, as localllm
    does where this build has kernels that crash (localllm/engine/build.py): llama-bench
    and llama-server SIGSEGV there too. Their flags: --repack 0 and --no-repack."""
    from localllm.engine.build import avoid_crashing_kernels

    return avoid_crashing_kernels() is not None


def llama_bench(cache: Path, model: Path, threads: int) -> dict:
    """llama-bench's pp512 and tg128 tokens/s for model on this machine's CPU threads: the
    faster of flash attention off and on for each (the strongest reference), and which won."""
    import json

    binary = built_tool(cache, "llama-bench")
    extra = ["--repack", "0"] if same_kernels() else []
    out = subprocess.run([str(binary), "-m", str(model), "-p", "512", "-n", "128", "-t",
                          str(threads), "-fa", "0,1", "-o", "json", *extra], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    rates: dict = {}
    for row in json.loads(out):
        kind = "pp512" if row.get("n_prompt") == 512 and not row.get("n_gen") else "tg128"
        speed = float(row["avg_ts"])
        if speed > rates.get(kind, 0.0):
            rates[kind] = speed
            rates[f"{kind}_flash_attn"] = bool(row.get("flash_attn"))
    return rates
