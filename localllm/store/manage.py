"""Registry operations behind `list`, `import` and `rm`: what is stored, adding, removing.

Removing deletes only what localllm owns, as the registry records it (not by
where the file lies): files it downloaded, copied in or wrote, or a hub-cache
snapshot it created (and the blob, when no other snapshot uses it), and never
a file another entry still uses. A model imported in place is only
unregistered; the user's file is never touched.
"""

from __future__ import annotations

import time
from pathlib import Path

from localllm.config import Settings
from localllm.errors import LocalLLMError, ModelNotFound
from localllm.gguf_meta import read_gguf_info
from localllm.progress import ProgressReporter
from localllm.store.integrity import CHUNK, replace_atomically, sha256_file, temp_path_for
from localllm.store.paths import folder_for_name
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
    owned: bool | None = None,
) -> ModelEntry:
    """Validate a local GGUF and register it, copied into the models folder unless `link`.

    A copy is localllm's to delete; a linked file is the user's unless `owned` says it was
    written by localllm (a quantizer output in the models folder)."""
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
        path = settings.models_dir / "imported" / folder_for_name(name) / source.name
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
        owned=(not link) if owned is None else owned,
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
    shared_with = [
        other.name for other in registry.all().values()
        if other.name != name and _same_file(Path(other.path), path)
    ]  # fmt: skip
    if shared_with:
        outcome = f"unregistered it; {path} stays: {', '.join(shared_with)} still uses it"
    elif not _owned(settings, entry):
        outcome = f"unregistered it; your file {path} was left in place"
    elif entry.repo and _inside(path, settings.hf_cache_dir):
        _remove_hub_snapshot(settings, path)
        outcome = f"removed it from the Hugging Face cache ({path.parent})"
    else:
        path.unlink(missing_ok=True)
        folder = path.parent
        ours = _inside(folder, settings.models_dir) and folder != settings.models_dir
        if ours and folder.exists() and not any(folder.iterdir()):
            folder.rmdir()
        outcome = f"deleted {path}"
    registry.remove(name)
    return entry, outcome


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _owned(settings: Settings, entry: ModelEntry) -> bool:
    """Whether localllm made this file, and may delete it."""
    if entry.owned is not None:
        return entry.owned
    # Entries written before ownership was recorded: a file registered where it lay is
    # the user's, wherever that is; otherwise what lies in our folders is ours.
    if entry.source.startswith("file:") and _same_file(Path(entry.source[5:]), Path(entry.path)):
        return False
    return _inside(Path(entry.path), settings.models_dir) or (
        entry.repo is not None and _inside(Path(entry.path), settings.hf_cache_dir)
    )
