"""Start a real `localllm serve` on 127.0.0.1 for a test, and stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(home: Path, *args: str, env: dict | None = None, key: str | None = None,
                   port: int | None = None):  # fmt: skip
    """Yields the base URL of a server started with args; its log goes to a temp file."""
    port = port or free_port()
    environ = {**os.environ, "LOCALLLM_HOME": str(home), **(env or {})}
    environ.pop("LOCALLLM_API_KEY", None) if key is None else None
    cmd = [sys.executable, "-m", "localllm", "serve", "--port", str(port), *args]
    log = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=environ, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"the server exited: {log.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
