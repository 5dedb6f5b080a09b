"""Registry operations behind `list`, `import` and `rm`: what is stored, adding, removing.

Removing deletes only what localllm owns: files it downloaded into its models
folder, or a hub-cache snapshot it created (and the blob, when no other
snapshot uses it). A model imported in place is only unregistered; the
user's file is never touched.
"""

from __future__ import annotations

import time
from pathlib import Path

from localllm.config import Settings
from localllm.errors import LocalLLMError, ModelNotFound
from localllm.gguf_meta import read_gguf_info
from localllm.progress import ProgressReporter
from localllm.store.integrity import CHUNK, replace_atomically, sha256_file, temp_path_for
from localllm.store.registry import ModelEntry, Registry


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def import_model(
    settings: Settings,
    source: Path,
    progress: ProgressReporter,
    *,
    name: str | None = None,
    link: bool = False,
) -> ModelEntry:
    """Validate a local GGUF and register it, copied into the models folder unless `link`."""
    info = read_gguf_info(source)  # refuses non-GGUF and truncated files before anything is stored
    name = name or source.stem.lower()
    registry = Registry(settings)
    if registry.get(name) is not None:
        raise LocalLLMError(
            f"a model named {name!r} is already registered: choose another --name or "
            f"`localllm rm {name}` first"
        )
    if link:
        path = source.resolve()
        sha = sha256_file(path, progress)
    else:
        folder = name.replace("/", "_").replace(":", "_")
        path = settings.models_dir / "imported" / folder / source.name
        sha = _copy_verified(source, path, progress)
    st = path.stat()
    entry = ModelEntry(
        name=name,
        path=str(path),
        sha256=sha,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        source=f"file:{source.resolve()}",
        architecture=info.architecture,
        quant=(info.file_type or "").lower() or None,
        context_length=info.context_length,
        added_at=time.time(),
    )
    registry.put(entry)
    return entry


def _copy_verified(source: Path, target: Path, progress: ProgressReporter) -> str:
    """Copy through a temp file, hashing on the way; the target appears only when complete."""
    import hashlib

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    digest = hashlib.sha256()
    progress.start(f"copying {source.name}", source.stat().st_size)
    try:
        with source.open("rb") as src, tmp.open("wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
                digest.update(chunk)
                progress.advance(len(chunk))
        replace_atomically(tmp, target)
    finally:
        progress.finish()
        tmp.unlink(missing_ok=True)
    return digest.hexdigest()


def _remove_hub_snapshot(settings: Settings, path: Path) -> None:
    """Remove a snapshot link, and its blob when no other snapshot points at it."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    repo_dir = blob.parent.parent
    still_used = any(
        p.is_symlink() and p.resolve() == blob for p in (repo_dir / "snapshots").rglob("*")
    )
    if not still_used:
        blob.unlink(missing_ok=True)


def remove_model(settings: Settings, name: str) -> tuple[ModelEntry, str]:
    """Unregister a model and delete what localllm owns of it; returns (entry, what happened)."""
    registry = Registry(settings)
    entry = registry.get(name)
    if entry is None:
        raise ModelNotFound(f"no stored model named {name!r}: see `localllm list`")
    path = Path(entry.path)
    if _inside(path, settings.models_dir):
        path.unlink(missing_ok=True)
        folder = path.parent
        if folder != settings.models_dir and not any(folder.iterdir()):
            folder.rmdir()
        outcome = f"deleted {path}"
    elif entry.repo and _inside(path, settings.hf_cache_dir):
        _remove_hub_snapshot(settings, path)
        outcome = f"removed it from the Hugging Face cache ({path.parent})"
    else:
        outcome = f"unregistered it; your file {path} was left in place"
    registry.remove(name)
    return entry, outcome
