"""What `show` and `search` report: a model's facts and memory needs, catalogue and hub matches.

Read-only: nothing here downloads a model or changes the registry.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path

from localllm.catalog import ModelSpec, catalog_target_name, load_catalog
from localllm.config import Settings
from localllm.errors import ModelNotFound
from localllm.gguf_meta import read_gguf_info
from localllm.store.fit import estimate_memory, machine_fit
from localllm.store.resolve import find_local

HUB_SEARCH_TIMEOUT_S = 6.0  # search is a convenience: never keep the user waiting long


def _human_count(n: int) -> str:
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.1f}{unit}".replace(".0", "")
    return str(n)


def _catalog_facts(spec: ModelSpec) -> dict:
    return {
        "description": spec.description,
        "family": spec.family,
        "kind": spec.kind,
        "license": spec.license,
        "gated": spec.gated,
        "commercial_use": spec.commercial_use,
        "quants": sorted(spec.quants),
        "default_quant": spec.default_quant,
        "hub_repo": spec.hub_repo,
        "catalogue_context_length": spec.context_length,
        **({"thinking": spec.thinking} if spec.thinking else {}),
        **({"embedding": asdict(spec.embedding)} if spec.embedding else {}),
        **({"note": spec.note} if spec.note else {}),
        **({"superseded_by": spec.replaced_by} if spec.replaced_by else {}),
    }


def replacement_note(spec: ModelSpec | None) -> str | None:
    """What to say about a superseded entry: which one replaces it and how to get it."""
    if spec is None or spec.replaced_by is None:
        return None
    return f"{spec.name} is superseded by {spec.replaced_by}: `localllm pull {spec.replaced_by}`"


def memory_table(info, contexts=(2048, 8192)) -> list[dict]:
    trained = info.context_length or max(contexts)
    rows = []
    for n_ctx in sorted({*(c for c in contexts if c < trained), trained}):
        verdict = machine_fit(estimate_memory(info, n_ctx))
        rows.append({**verdict.estimate.as_dict(), "device": verdict.device, "fits": verdict.fits})
    return rows


QUALITY_PREFIX = "localllm.quality."


def describe(settings: Settings, ref: str) -> dict:
    """Facts about a stored model, a .gguf path, or (not downloaded) a catalogue entry."""
    entry = find_local(settings, ref)
    spec = load_catalog().get(catalog_target_name(ref))
    if entry is not None:
        path = Path(entry.path)
        report = {"name": entry.name, "source": entry.source, "sha256": entry.sha256}
        spec = spec or load_catalog().get(entry.catalog_name or "")
    elif Path(ref).expanduser().is_file():
        path = Path(ref).expanduser()
        report = {"name": path.name, "source": "file"}
    elif spec is not None:
        return {"name": spec.name, "downloaded": False, **_catalog_facts(spec)}
    else:
        raise ModelNotFound(f"unknown model {ref!r}: see `localllm list` or `localllm search`")
    info = read_gguf_info(path)
    report.update(
        downloaded=True,
        path=str(path),
        size=info.size,
        architecture=info.architecture,
        model_name=info.name,
        parameters=_human_count(info.parameter_count),
        quant=info.file_type,
        tensor_types=info.tensor_types,
        context_length=info.context_length,
        chat_template=bool(info.chat_template),
        license=info.get("general.license") or (spec.license if spec else None),
        quantized_by=info.get("general.quantized_by"),
    )
    quality = {
        k.removeprefix(QUALITY_PREFIX): v
        for k, v in info.metadata.items()
        if k.startswith(QUALITY_PREFIX)
    }
    if quality:
        report["quality"] = quality  # written by `localllm quantize --report`
    if spec is not None:
        report.update({k: v for k, v in _catalog_facts(spec).items() if k not in report})
    report["memory"] = memory_table(info)
    return report


def _hub_search(settings: Settings, term: str, limit: int) -> list[dict]:
    from huggingface_hub import HfApi

    from localllm.store.hub import quiet_hub_client

    quiet_hub_client()
    models = HfApi(endpoint=settings.hf_endpoint).list_models(
        search=term, filter="gguf", sort="downloads", limit=limit
    )
    return [{"id": m.id, "downloads": m.downloads} for m in models]


def search_models(settings: Settings, term: str, *, limit: int = 15) -> dict:
    """Catalogue entries matching term; the hub's GGUF repos too when online."""
    words = term.lower().split()
    matches = [
        s
        for s in load_catalog().values()
        if all(w in f"{s.name} {s.family} {s.kind} {s.description}".lower() for w in words)
    ]
    matches.sort(key=lambda s: s.superseded)  # stable: file order, newest first, kept
    catalog = [
        {"name": s.name, "parameters": s.parameters, "description": s.description,
         "license": s.license, "commercial_use": s.commercial_use, "kind": s.kind,
         "superseded_by": s.replaced_by, "thinking": s.thinking}
        for s in matches
    ]  # fmt: skip
    result: dict = {"catalog": catalog, "hub": [], "hub_note": None}
    if settings.offline:
        result["hub_note"] = "offline: searched the catalogue only"
        return result
    box: dict = {}

    def run() -> None:
        try:
            box["hub"] = _hub_search(settings, term, limit)
        except Exception as exc:  # the hub is optional here: report, never fail the search
            box["error"] = exc.__class__.__name__

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HUB_SEARCH_TIMEOUT_S)
    if "hub" in box:
        result["hub"] = box["hub"]
    else:
        reason = box.get("error", "timed out")
        result["hub_note"] = f"the Hugging Face hub could not be searched ({reason})"
    return result
