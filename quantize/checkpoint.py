"""A Hugging Face checkpoint folder: its config, its shards and their tensors.

Nothing is loaded here beyond the JSON files and the safetensors headers;
tensors are read one at a time by the converter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from quantize.errors import CheckpointError
from quantize.safetensors_io import SourceTensor, read_tensor_index

INDEX_FILE = "model.safetensors.index.json"


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path.name} is not valid JSON ({exc}): fix or replace it") from None


@dataclass
class Checkpoint:
    folder: Path
    config: dict
    tensors: dict[str, SourceTensor]
    shards: list[Path]
    tokenizer_config: dict = field(default_factory=dict)
    generation_config: dict = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        names = self.config.get("architectures") or []
        return names[0] if names else self.config.get("model_type", "unknown")

    @property
    def input_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def has_file(self, name: str) -> bool:
        return (self.folder / name).is_file()

    def source_dtypes(self) -> set[str]:
        return {t.dtype for t in self.tensors.values()}


def shard_files(folder: Path) -> tuple[list[Path], dict[str, str]]:
    """The shard paths and, when sharded, which shard each tensor should be in."""
    index_path = folder / INDEX_FILE
    if index_path.is_file():
        weight_map = read_json(index_path).get("weight_map") or {}
        if not weight_map:
            raise CheckpointError(f"{INDEX_FILE} in {folder} has no weight_map: download it again")
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CheckpointError(
                f"shard {missing[0]} is missing from {folder} ({len(missing)} of {len(names)} "
                "missing): download the checkpoint again"
            )
        return [folder / n for n in names], weight_map
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        raise CheckpointError(
            f"{folder} has no .safetensors files (PyTorch .bin checkpoints are not supported): "
            "use a safetensors checkpoint"
        )
    return shards, {}


def open_checkpoint(folder: Path) -> Checkpoint:
    """Read config.json and every shard header; fail early on anything missing or damaged."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder} is not a folder: give a checkpoint folder or a hub repo id"
        )
    config = read_json(folder / "config.json")
    if not config:
        raise CheckpointError(
            f"{folder} has no config.json: it is not a Hugging Face checkpoint folder"
        )
    shards, weight_map = shard_files(folder)
    tensors: dict[str, SourceTensor] = {}
    for shard in shards:
        for name, tensor in read_tensor_index(shard).items():
            tensors[name] = tensor
    absent = [name for name in weight_map if name not in tensors]
    if absent:
        raise CheckpointError(
            f"tensor {absent[0]} is listed in {INDEX_FILE} (in {weight_map[absent[0]]}) but is "
            "not in that file: the shard is incomplete, download it again"
        )
    return Checkpoint(
        folder=folder,
        config=config,
        tensors=tensors,
        shards=shards,
        tokenizer_config=read_json(folder / "tokenizer_config.json"),
        generation_config=read_json(folder / "generation_config.json"),
    )
