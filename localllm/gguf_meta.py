"""Read GGUF headers: what a model file is, before llama.cpp ever sees it.

Validates that a file really is a complete GGUF model (magic, header, tensor
data within the file) and extracts what the rest of localllm needs: the
architecture, trained context, layer and head geometry for memory estimates,
and the chat template. It reads metadata only, never runs the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localllm.errors import InvalidModelFile

GGUF_MAGIC = b"GGUF"
KV_CACHE_BYTES_PER_VALUE = 2  # llama.cpp keeps the KV cache in f16 by default


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    size: int
    architecture: str
    name: str | None
    context_length: int | None
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    key_length: int | None
    value_length: int | None
    file_type: str | None  # e.g. "Q4_1", from general.file_type or the tensors
    tensor_types: dict[str, int] = field(default_factory=dict)  # type name -> tensor count
    chat_template: str | None = None
    add_bos_token: bool | None = None
    parameter_count: int = 0

    def kv_bytes_per_token(self) -> int:
        """Bytes of f16 KV cache one token of context costs; 0 when the header lacks geometry."""
        if not (self.block_count and self.head_count):
            return 0
        kv_heads = self.head_count_kv or self.head_count
        head_dim = (self.embedding_length or 0) // self.head_count
        k = self.key_length or head_dim
        v = self.value_length or head_dim
        return self.block_count * kv_heads * (k + v) * KV_CACHE_BYTES_PER_VALUE


def _check_magic(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except IsADirectoryError:
        raise InvalidModelFile(f"{path} is a directory, not a .gguf model file") from None
    except FileNotFoundError:
        raise InvalidModelFile(f"{path} does not exist: check the path") from None
    except OSError as exc:
        raise InvalidModelFile(f"cannot read {path}: {exc.strerror or exc}") from None
    if magic != GGUF_MAGIC:
        raise InvalidModelFile(
            f"{path} is not a GGUF model file: convert it with `localllm quantize` "
            "or download a .gguf build of the model"
        )


def _scalar(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    if f is None or not f.types:
        return None
    return f.contents()


def _first_int(value: Any) -> int | None:
    if isinstance(value, list):  # some models store per-layer values
        value = max(value) if value else None
    return int(value) if value is not None else None


def _file_type_name(reader: Any, tensor_types: dict[str, int]) -> str | None:
    import gguf

    ftype = _scalar(reader, "general.file_type")
    if ftype is not None:
        try:
            return gguf.LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_")
        except ValueError:
            pass
    # Fall back to the most common type among the 2-D weight tensors.
    weights = {k: v for k, v in tensor_types.items() if k not in ("F32",)}
    return max(weights, key=weights.get) if weights else None


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Validate a local GGUF file and read its header; raises InvalidModelFile."""
    path = Path(path)
    _check_magic(path)
    import gguf

    try:
        reader = gguf.GGUFReader(path, "r")
    except (ValueError, IndexError, OSError, KeyError) as exc:
        raise InvalidModelFile(
            f"{path} is a damaged or truncated GGUF file ({exc.__class__.__name__}): "
            "download it again"
        ) from None
    size = path.stat().st_size
    tensor_types: dict[str, int] = {}
    data_end = 0
    parameter_count = 0
    for t in reader.tensors:
        tensor_types[t.tensor_type.name] = tensor_types.get(t.tensor_type.name, 0) + 1
        data_end = max(data_end, int(t.data_offset) + int(t.n_bytes))
        parameter_count += int(t.n_elements)
    if data_end > size:
        raise InvalidModelFile(
            f"{path} is truncated ({size} of {data_end} bytes): download it again"
        )
    arch = _scalar(reader, "general.architecture")
    if not arch:
        raise InvalidModelFile(f"{path} has no general.architecture: it is not a model file")

    def arch_int(key: str) -> int | None:
        return _first_int(_scalar(reader, f"{arch}.{key}"))

    return GGUFInfo(
        path=path,
        size=size,
        architecture=str(arch),
        name=_scalar(reader, "general.name"),
        context_length=arch_int("context_length"),
        block_count=arch_int("block_count"),
        embedding_length=arch_int("embedding_length"),
        head_count=arch_int("attention.head_count"),
        head_count_kv=arch_int("attention.head_count_kv"),
        key_length=arch_int("attention.key_length"),
        value_length=arch_int("attention.value_length"),
        file_type=_file_type_name(reader, tensor_types),
        tensor_types=tensor_types,
        chat_template=_scalar(reader, "tokenizer.chat_template"),
        add_bos_token=_scalar(reader, "tokenizer.ggml.add_bos_token"),
        parameter_count=parameter_count,
    )
