"""The general.* keys of a converted model: what it is, where it came from, who made it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import gguf
import numpy as np
from gguf.utility import size_label

from quantize.checkpoint import Checkpoint

MADE_BY = "localllm"
FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---", re.S)


def model_card_license(text: str) -> str | None:
    """The `license:` of a Hugging Face README's YAML front matter."""
    match = FRONT_MATTER.match(text)
    if not match:
        return None
    found = re.search(r"^license:\s*['\"]?([\w.+-]+)", match.group(1), re.M)
    return found.group(1) if found else None


def _basename(name: str, size: str) -> str:
    base = re.sub(re.escape(size), "", name, flags=re.I) if size else name
    return re.sub(r"[-_. ]+", "-", base).strip("-").lower() or name.lower()


@dataclass
class ModelCard:
    name: str
    size_label: str | None = None
    license: str | None = None
    source_repo: str | None = None  # "ORG/REPO" on the hub
    made_by: str = MADE_BY

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, source_repo: str | None = None) -> ModelCard:
        named = str(ckpt.config.get("_name_or_path") or "").rstrip("/")
        name = (source_repo or named or ckpt.folder.name).split("/")[-1]
        params = sum(int(np.prod(t.shape)) for t in ckpt.tensors.values())
        readme = ckpt.folder / "README.md"
        text = readme.read_text("utf-8", "replace") if readme.is_file() else ""
        return cls(name, size_label(params, 0, 0, 0), model_card_license(text), source_repo)


def write_general(writer: gguf.GGUFWriter, card: ModelCard, file_type: int) -> None:
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(card.name)
    writer.add_basename(_basename(card.name, card.size_label or ""))
    if card.size_label:
        writer.add_size_label(card.size_label)
    if card.license:
        writer.add_license(card.license)
    if card.source_repo:
        writer.add_source_repo_url(f"https://huggingface.co/{card.source_repo}")
    writer.add_quantized_by(card.made_by)
    writer.add_file_type(int(file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
