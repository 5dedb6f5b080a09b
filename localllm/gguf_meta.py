"""Read GGUF headers: what a model file is, before llama.cpp ever sees it.

A streaming parser over any binary reader (a local file here; an HTTP range
reader for remote files), because gguf's GGUFReader decodes every metadata
array eagerly and takes seconds on a real vocabulary. Only the values we use
are decoded; large arrays (tokens, merges) are skipped. It validates magic,
version and that the tensor data lies within the file, and what llama.cpp
asserts on rather than refuses (an assertion aborts the whole process): two
equal tokens, impossible layer or expert counts. It never runs a model.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from localllm.errors import InvalidModelFile

GGUF_MAGIC = b"GGUF"
KV_CACHE_BYTES_PER_VALUE = 2  # llama.cpp keeps the KV cache in f16 by default
DEFAULT_ALIGNMENT = 32
MAX_STRING = 64 * 1024 * 1024  # no sane header string is larger; guards corrupt lengths
GGML_MAX_DIMS = 4  # ggml.h
LLAMA_MAX_LAYERS = 512  # llama-hparams.h: llama.cpp asserts block_count in (0, 512]
LLAMA_MAX_EXPERTS = 1024  # llama-hparams.h

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
_TOKENS = "tokenizer.ggml.tokens"
_LENGTH = struct.Struct("<Q")
# Arrays we never need decoded: skipped, only their length is kept.
_SKIP_ARRAYS = (_TOKENS, "tokenizer.ggml.merges", "tokenizer.ggml.scores",
                "tokenizer.ggml.token_type")  # fmt: skip


class TruncatedHeader(Exception):
    pass


class _Cursor:
    """Little-endian reads from a binary stream, raising TruncatedHeader at EOF."""

    def __init__(self, stream: BinaryIO, size: int | None = None):
        self.stream = stream
        self.pos = 0
        self.size = size  # when known, no read may run past it (a corrupt count or length)

    def read(self, n: int) -> bytes:
        if self.size is not None and self.pos + n > self.size:
            raise TruncatedHeader
        data = self.stream.read(n)
        if len(data) != n:
            raise TruncatedHeader
        self.pos += n
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt)))[0]

    def raw_string(self) -> bytes:
        n = self.unpack("Q")
        if n > MAX_STRING:
            raise ValueError(f"string of {n} bytes")
        return self.read(n)

    def string(self) -> str:
        return self.raw_string().decode("utf-8", "replace")

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
            self._strings(count)
        else:
            for _ in range(count):
                self.value(item_type, keep=False)

    def _strings(self, count: int, unique: bool = False) -> None:
        """Read past `count` strings (the hot loop of a header: ~50k tokens, ~50k merges).

        unique: raise ValueError when two are equal as llama.cpp compares them,
        as C strings (up to a NUL byte), an empty one renamed [EMPTY_<i>]: two
        equal tokens make it abort (llama-vocab.cpp asserts
        id_to_token.size() == token_to_id.size()).
        """
        read, length = self.stream.read, _LENGTH.unpack
        end = self.pos
        limit = self.size if self.size is not None else float("inf")
        seen: set[bytes] = set()
        for i in range(count):
            head = read(8)
            if len(head) != 8:
                raise TruncatedHeader
            (n,) = length(head)
            if n > MAX_STRING:
                raise ValueError(f"string of {n} bytes")
            end += 8 + n
            if end > limit:
                raise TruncatedHeader
            word = read(n)
            if len(word) != n:
                raise TruncatedHeader
            if unique:
                if b"\0" in word:
                    word = word[: word.index(b"\0")]
                seen.add(word or b"[EMPTY_%d]" % i)
                if len(seen) <= i:
                    raise ValueError(f"token {i} of the vocabulary repeats an earlier one")
        self.pos = end

    def tokens(self) -> int:
        """Read past the vocabulary array, checking no two tokens are equal; returns its length."""
        item_type, count = self.unpack("I"), self.unpack("Q")
        if item_type != _STRING:
            self._skip_array(item_type, count)  # llama.cpp refuses it with an error of its own
        else:
            self._strings(count, unique=True)
        return count


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


def _tensor_bytes(name: str, type_id: int, shape: tuple[int, ...]) -> tuple[str, int]:
    """The type's name and the tensor's size in bytes; ValueError where ggml would refuse it."""
    import gguf

    try:
        qtype = gguf.GGMLQuantizationType(type_id)
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise ValueError(f"tensor {name} has unknown type {type_id}") from None
    n = 1
    for d in shape:
        if not 0 < d < 2**63:
            raise ValueError(f"tensor {name} has a dimension of {d}")
        n *= d
    if n >= 2**63:
        raise ValueError(f"tensor {name} has {n} elements")
    if (shape[0] if shape else 1) % block:
        raise ValueError(f"tensor {name} rows do not fill whole {qtype.name} blocks")
    return qtype.name, n // block * type_size


def _check_layout(tensors: list[TensorInfo], align: int) -> None:
    """Each tensor's data starts where the one before it ends, padded (as gguf.cpp requires)."""
    expected = 0
    for t in tensors:
        if t.offset != expected:
            raise ValueError(f"tensor {t.name} starts at {t.offset}, not {expected}")
        expected += (t.n_bytes + align - 1) // align * align


def _check_counts(info: GGUFInfo) -> None:
    """Counts llama.cpp refuses (vocabulary arrays) or asserts on (llama-model.cpp load_hparams)."""
    n_tokens = info.get(_TOKENS)
    for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        n = info.get(key)
        if isinstance(n_tokens, int) and isinstance(n, int) and n < n_tokens:
            raise ValueError(f"{key} has {n} entries for {n_tokens} tokens")
    if info.architecture in ("", "clip"):  # llama.cpp reads no hyperparameters for these
        return
    layers = info.block_count
    if layers is not None:
        if not 0 < layers <= LLAMA_MAX_LAYERS:
            raise ValueError(f"block_count is {layers}")
        if (info._arch_int("nextn_predict_layers") or 0) > layers:
            raise ValueError("more next-token layers than layers")
    experts = info._arch_int("expert_count") or 0
    used = info._arch_int("expert_used_count") or 0
    groups = info._arch_int("expert_group_count") or 0
    group_used = info._arch_int("expert_group_used_count") or 0
    if experts <= 1 and info.architecture in ("hunyuan-dense", "hunyuan_vl"):
        experts = used = 0  # llama.cpp resets these for them
    if experts:
        ok = experts <= LLAMA_MAX_EXPERTS and 0 < used <= experts and groups < experts
        if groups > 1:
            ok = ok and experts % groups == 0 and 0 < group_used < groups
    else:
        ok = used == 0 and groups == 0
    if not ok:
        raise ValueError(f"expert counts {experts}, {used} used, {groups} groups are impossible")


def parse_header(stream: BinaryIO, size: int | None = None, path: Path | None = None) -> GGUFInfo:
    """Parse a GGUF header from a stream positioned at its start.

    Raises ValueError / TruncatedHeader on malformed input; read_gguf_info turns
    those into user-facing errors.
    """
    cur = _Cursor(stream, size or None)
    if cur.read(4) != GGUF_MAGIC:
        raise ValueError("bad magic")
    version = cur.unpack("I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = cur.unpack("Q"), cur.unpack("Q")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        if key in metadata:
            raise ValueError(f"key {key} appears twice")
        vtype = cur.unpack("I")
        if key == _TOKENS and vtype == _ARRAY:
            metadata[key] = cur.tokens()
        else:
            metadata[key] = cur.value(vtype, keep=key not in _SKIP_ARRAYS)
    tensors = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.unpack("I")
        if n_dims > GGML_MAX_DIMS:
            raise ValueError(f"tensor {name} has {n_dims} dimensions")
        shape = tuple(cur.unpack("Q") for _ in range(n_dims))
        type_name, n_bytes = _tensor_bytes(name, cur.unpack("I"), shape)
        tensors.append(TensorInfo(name, shape, type_name, cur.unpack("Q"), n_bytes))
    align = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise ValueError(f"alignment {align!r} is not a power of 2")
    _check_layout(tensors, align)
    data_offset = (cur.pos + align - 1) // align * align
    info = GGUFInfo(path, size or 0, version, metadata, tuple(tensors), data_offset)
    _check_counts(info)
    return info


def _open_error(path: Path, exc: OSError) -> InvalidModelFile:
    if isinstance(exc, IsADirectoryError):
        return InvalidModelFile(f"{path} is a directory, not a .gguf model file")
    if isinstance(exc, FileNotFoundError):
        return InvalidModelFile(f"{path} does not exist: check the path")
    return InvalidModelFile(f"cannot read {path}: {exc.strerror or exc}")


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Validate a local GGUF file and read its header; raises InvalidModelFile.

    A command reads one model's header several times (resolving, planning, loading), a
    tenth of a second each for a large vocabulary: the last few are kept, keyed on the
    file's identity and modification, so a changed or replaced file is read again."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise _open_error(path, exc) from None
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _HEADERS_LOCK:
        info = _HEADERS.get(key)
    if info is None:
        info = _parse_gguf_file(path, st.st_size)
        with _HEADERS_LOCK:
            _HEADERS[key] = info
            while len(_HEADERS) > HEADERS_KEPT:
                del _HEADERS[next(iter(_HEADERS))]  # the oldest first
    return info


HEADERS_KEPT = 8
_HEADERS: dict[tuple, GGUFInfo] = {}
_HEADERS_LOCK = threading.Lock()


def _parse_gguf_file(path: Path, size: int) -> GGUFInfo:
    try:
        with path.open("rb", buffering=1024 * 1024) as fh:
            magic = fh.read(4)
            fh.seek(0)
            info = parse_header(fh, size, path) if magic == GGUF_MAGIC else None
    except OSError as exc:
        raise _open_error(path, exc) from None
    except (TruncatedHeader, ValueError, KeyError, UnicodeDecodeError) as exc:
        detail = "header cut short" if isinstance(exc, TruncatedHeader) else str(exc) or "malformed"
        raise InvalidModelFile(
            f"{path} is a damaged or truncated GGUF file ({detail}): download it again"
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
