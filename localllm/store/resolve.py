"""Turn a model argument into a verified local GGUF file.

Accepts what the command-line contract promises: a path to a .gguf file, a
registered name, a catalogue name with an optional `:QUANT`, or
`hf:ORG/REPO[:QUANT|:FILE.gguf]`. A model that is not on disk yet is pulled
on first use (like `ollama run`); a stored file that changed since it was
verified is hashed again, and fetched again when damaged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from localllm.catalog import load_catalog
from localllm.config import DEFAULT_MODEL, Settings
from localllm.errors import IntegrityError, ModelNotFound
from localllm.gguf_meta import read_gguf_info
from localllm.progress import ProgressReporter, SilentProgress
from localllm.store.integrity import sha256_file
from localllm.store.pull import catalog_target, parse_hf_spec, pull, pull_target
from localllm.store.registry import ModelEntry, Registry


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what to show the user: registry key or file name
    path: Path
    registry_key: str | None = None


def _looks_like_path(ref: str) -> bool:
    return ref.endswith(".gguf") or os.sep in ref or "/" in ref


def _resolve_path(ref: str) -> ResolvedModel:
    path = Path(ref).expanduser()
    if not path.exists():
        raise ModelNotFound(f"no such file: {ref}: check the path")
    read_gguf_info(path)  # validates magic, header and size before llama.cpp sees it
    return ResolvedModel(name=path.name, path=path.resolve())


def verify_entry(entry: ModelEntry, registry: Registry, progress: ProgressReporter) -> bool:
    """True when the stored file is intact; re-hashes only if it changed on disk."""
    if entry.file_unchanged():
        return True
    path = Path(entry.path)
    if not path.is_file():
        return False
    progress.message(f"{entry.name}: the stored file changed since it was verified; checking it")
    if sha256_file(path.resolve(), progress) != entry.sha256:
        return False
    st = path.stat()
    registry.touch(entry.name, size=st.st_size, mtime_ns=st.st_mtime_ns)
    return True


def find_hub_entry(registry: Registry, ref: str) -> ModelEntry | None:
    """A stored model an `hf:` spec refers to, found without the network."""
    repo, selector = parse_hf_spec(ref)
    matches = [e for e in registry.all().values() if e.repo == repo and e.catalog_name is None]
    if selector:
        sel = selector.lower()
        matches = [e for e in matches if sel in (Path(e.path).name.lower(), (e.quant or ""))]
    return matches[0] if len(matches) == 1 else None


def find_local(settings: Settings, ref: str) -> ModelEntry | None:
    """The registry entry `ref` names (registered name, catalogue ref or hf spec), if stored."""
    registry = Registry(settings)
    entry = registry.get(ref)
    if entry is not None:
        return entry
    if ref.startswith("hf:"):
        return find_hub_entry(registry, ref)
    target = catalog_target(ref)
    return registry.get(target.key) if target else None


def resolve_model(
    settings: Settings,
    ref: str | None,
    progress: ProgressReporter | None = None,
    *,
    show_pip_progress: bool = False,
    allow_fetch: bool = True,
    allow_paths: bool = True,
) -> ResolvedModel:
    """Find (and if needed fetch) the model `ref` names; None means the default model.

    The server passes allow_paths=False (requests name models, never files) and
    allow_fetch=False unless started with --allow-pull."""
    progress = progress or SilentProgress()
    ref = (ref or DEFAULT_MODEL).strip()
    if not ref:
        raise ModelNotFound("empty model name: name a model, e.g. -m smollm2-135m")
    is_known = ref.startswith("hf:") or catalog_target(ref) is not None
    if not is_known and Registry(settings).get(ref) is None:
        if not allow_paths and _looks_like_path(ref):
            raise ModelNotFound(
                f"{ref!r} is a path: the server loads models by name; register the file with "
                "`localllm import PATH` and use its name"
            )
        if allow_paths and (_looks_like_path(ref) or Path(ref).exists()):
            return _resolve_path(ref)
        known = ", ".join(sorted(load_catalog()))
        raise ModelNotFound(
            f"unknown model {ref!r}: name a catalogue model ({known}), a registered model "
            "(`localllm list`), hf:ORG/REPO, or a path to a .gguf file"
        )
    registry = Registry(settings)
    entry = find_local(settings, ref)
    if entry is not None and not verify_entry(entry, registry, progress):
        if entry.source.startswith("file:"):
            raise IntegrityError(
                f"the file of {entry.name!r} ({entry.path}) is damaged or missing: import it again"
            )
        progress.message(f"{entry.name}: the stored file is damaged or missing; fetching it again")
        entry = None
    if entry is None and not allow_fetch:
        raise ModelNotFound(
            f"model {ref!r} is not pulled: run `localllm pull {ref}` first, or start the "
            "server with --allow-pull"
        )
    if entry is None:
        target = pull_target(settings, ref)
        entry = pull(settings, target, progress, show_pip_progress=show_pip_progress)
    return ResolvedModel(name=entry.name, path=Path(entry.path), registry_key=entry.name)


def mark_used(settings: Settings, model: ResolvedModel) -> None:
    if model.registry_key:
        Registry(settings).touch(model.registry_key)


def host_resolver(settings: Settings, progress: ProgressReporter | None = None, *,
                  allow_fetch: bool = True, allow_paths: bool = True):  # fmt: skip
    """The ModelHost's resolve callable: a reference to a verified, loadable local file."""
    from localllm.engine.host import HostedModel
    from localllm.store.probe import check_loadable

    progress = progress or SilentProgress()

    def resolve(ref: str | None) -> HostedModel:
        model = resolve_model(
            settings, ref, progress, show_pip_progress=getattr(progress, "bars", False),
            allow_fetch=allow_fetch, allow_paths=allow_paths,
        )  # fmt: skip
        check_loadable(settings, model.path)  # a file new to us: would llama.cpp crash on it?
        return HostedModel(model.name, model.path, on_used=lambda: mark_used(settings, model))

    return resolve
