"""Read GGUF headers: what a model file is, before llama.cpp ever sees it.

A streaming parser over any binary reader (a local file here; an HTTP range
reader for remote files), because gguf's GGUFReader decodes every metadata
array eagerly and takes seconds on a real vocabulary. Only the values we use
are decoded; large arrays (tokens, merges) are skipped. It validates magic,
version and that the tensor data lies within the file; it never runs a model.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from localllm.errors import InvalidModelFile

GGUF_MAGIC = b"GGUF"
KV_CACHE_BYTES_PER_VALUE = 2  # llama.cpp keeps the KV cache in f16 by default
DEFAULT_ALIGNMENT = 32
MAX_STRING = 64 * 1024 * 1024  # no sane header string is larger; guards corrupt lengths

# GGUF metadata value types -> struct format of one scalar.
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9
# Arrays we never need decoded: skipped, only their length is kept.
_SKIP_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.scores",
                "tokenizer.ggml.token_type")  # fmt: skip


class _Truncated(Exception):
    pass


class _Cursor:
    """Little-endian reads from a binary stream, raising _Truncated at EOF."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.pos = 0

    def read(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) != n:
            raise _Truncated
        self.pos += n
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("Q")
        if n > MAX_STRING:
            raise ValueError(f"string of {n} bytes")
        return self.read(n).decode("utf-8", "replace")

    def skip(self, n: int) -> None:
        self.read(n)  # works on non-seekable streams too

    def value(self, vtype: int, keep: bool = True) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, count = self.unpack("I"), self.unpack("Q")
            if not keep:
                self._skip_array(item_type, count)
                return count
            return [self.value(item_type) for _ in range(count)]
        raise ValueError(f"unknown metadata type {vtype}")

    def _skip_array(self, item_type: int, count: int) -> None:
        if item_type in _SCALARS:
            self.skip(struct.calcsize(_SCALARS[item_type]) * count)
        elif item_type == _STRING:
            for _ in range(count):
                self.skip(self.unpack("Q"))
        else:
            for _ in range(count):
                self.value(item_type, keep=False)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_name: str
    offset: int  # from the start of the data section
    n_bytes: int


@dataclass(frozen=True)
class GGUFInfo:
    path: Path | None
    size: int  # file size in bytes
    version: int
    metadata: dict[str, Any]  # big arrays replaced by their length
    tensors: tuple[TensorInfo, ...]
    data_offset: int

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def _arch_int(self, key: str) -> int | None:
        value = self.metadata.get(f"{self.architecture}.{key}")
        if isinstance(value, list):  # some models store per-layer values
            value = max(value) if value else None
        return int(value) if value is not None else None

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def name(self) -> str | None:
        return self.metadata.get("general.name")

    @property
    def context_length(self) -> int | None:
        return self._arch_int("context_length")

    @property
    def block_count(self) -> int | None:
        return self._arch_int("block_count")

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    @property
    def parameter_count(self) -> int:
        total = 0
        for t in self.tensors:
            n = 1
            for d in t.shape:
                n *= d
            total += n
        return total

    @property
    def tensor_types(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.tensors:
            counts[t.type_name] = counts.get(t.type_name, 0) + 1
        return counts

    @property
    def file_type(self) -> str | None:
        """The quantization, e.g. 'Q4_1', from general.file_type or the tensors."""
        import gguf

        ftype = self.metadata.get("general.file_type")
        if ftype is not None:
            try:
                return gguf.LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_")
            except ValueError:
                pass
        weights = {k: v for k, v in self.tensor_types.items() if k != "F32"}
        return max(weights, key=weights.get) if weights else None

    def kv_bytes_per_token(self) -> int:
        """Bytes of f16 KV cache one token of context costs; 0 when the header lacks geometry."""
        layers, heads = self.block_count, self._arch_int("attention.head_count")
        if not (layers and heads):
            return 0
        kv_heads = self._arch_int("attention.head_count_kv") or heads
        head_dim = (self._arch_int("embedding_length") or 0) // heads
        k = self._arch_int("attention.key_length") or head_dim
        v = self._arch_int("attention.value_length") or head_dim
        return layers * kv_heads * (k + v) * KV_CACHE_BYTES_PER_VALUE


def _tensor_bytes(type_id: int, shape: tuple[int, ...]) -> tuple[str, int]:
    import gguf

    qtype = gguf.GGMLQuantizationType(type_id)
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n = 1
    for d in shape:
        n *= d
    return qtype.name, n // block * type_size


def parse_header(stream: BinaryIO, size: int | None = None, path: Path | None = None) -> GGUFInfo:
    """Parse a GGUF header from a stream positioned at its start.

    Raises ValueError / _Truncated on malformed input; read_gguf_info turns
    those into user-facing errors.
    """
    cur = _Cursor(stream)
    if cur.read(4) != GGUF_MAGIC:
        raise ValueError("bad magic")
    version = cur.unpack("I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = cur.unpack("Q"), cur.unpack("Q")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.unpack("I"), keep=key not in _SKIP_ARRAYS)
    tensors = []
    for _ in range(n_tensors):
        name = cur.string()
        shape = tuple(cur.unpack("Q") for _ in range(cur.unpack("I")))
        type_name, n_bytes = _tensor_bytes(cur.unpack("I"), shape)
        tensors.append(TensorInfo(name, shape, type_name, cur.unpack("Q"), n_bytes))
    align = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT)) or DEFAULT_ALIGNMENT
    data_offset = (cur.pos + align - 1) // align * align
    return GGUFInfo(path, size or 0, version, metadata, tuple(tensors), data_offset)


def _open_error(path: Path, exc: OSError) -> InvalidModelFile:
    if isinstance(exc, IsADirectoryError):
        return InvalidModelFile(f"{path} is a directory, not a .gguf model file")
    if isinstance(exc, FileNotFoundError):
        return InvalidModelFile(f"{path} does not exist: check the path")
    return InvalidModelFile(f"cannot read {path}: {exc.strerror or exc}")


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Validate a local GGUF file and read its header; raises InvalidModelFile."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb", buffering=1024 * 1024) as fh:
            magic = fh.read(4)
            fh.seek(0)
            info = parse_header(fh, size, path) if magic == GGUF_MAGIC else None
    except OSError as exc:
        raise _open_error(path, exc) from None
    except (_Truncated, ValueError, KeyError, UnicodeDecodeError) as exc:
        detail = "cut short" if isinstance(exc, _Truncated) else str(exc) or "malformed"
        raise InvalidModelFile(
            f"{path} is a damaged or truncated GGUF file (header {detail}): download it again"
        ) from None
    if info is None:
        raise InvalidModelFile(
            f"{path} is not a GGUF model file: convert it with `localllm quantize` "
            "or download a .gguf build of the model"
        )
    end = info.data_offset + max((t.offset + t.n_bytes for t in info.tensors), default=0)
    if info.tensors and end > size:
        raise InvalidModelFile(f"{path} is truncated ({size} of {end} bytes): download it again")
    if not info.architecture:
        raise InvalidModelFile(f"{path} has no general.architecture: it is not a model file")
    return info


class RangeStream:
    """A forward-only stream over a remote file, fetched in growing Range requests.

    Each request asks for a quarter of what was read so far (at least 64 KiB),
    so the bytes fetched past the end of the header stay within 25% of it,
    whatever the file size, in a logarithmic number of requests.
    """

    MIN_CHUNK = 64 * 1024

    def __init__(self, fetch, size: int | None = None):
        self._fetch = fetch  # (start, length) -> bytes
        self._size = size
        self._buffer = b""
        self._pos = 0  # read position inside _buffer
        self._end = 0  # file offset just past _buffer
        self.bytes_fetched = 0
        self.requests = 0

    def read(self, n: int) -> bytes:
        if self._pos + n <= len(self._buffer):  # the common case: small reads from the buffer
            out = self._buffer[self._pos : self._pos + n]
            self._pos += n
            return out
        parts = [self._buffer[self._pos :]]
        missing = n - len(parts[0])
        self._buffer, self._pos = b"", 0
        while missing > 0 and self._fill():
            take = self._buffer[:missing]
            parts.append(take)
            self._pos = len(take)
            missing -= len(take)
        return b"".join(parts)

    def _fill(self) -> bool:
        length = max(self.MIN_CHUNK, self.bytes_fetched // 4)
        if self._size is not None:
            length = min(length, self._size - self._end)
        if length <= 0:
            return False
        data = self._fetch(self._end, length)
        self.requests += 1
        self.bytes_fetched += len(data)
        self._end += len(data)
        self._buffer, self._pos = data, 0
        return bool(data)


def read_remote_gguf_info(fetch, size: int, name: str) -> tuple[GGUFInfo, RangeStream]:
    """Parse a remote GGUF header via `fetch(start, length)`; returns it and the stream stats."""
    stream = RangeStream(fetch, size)
    try:
        info = parse_header(stream, size)
    except (_Truncated, ValueError, UnicodeDecodeError) as exc:
        raise InvalidModelFile(
            f"{name} does not start with a valid GGUF header ({exc or 'cut short'})"
        ) from None
    return info, stream
