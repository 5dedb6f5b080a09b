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
