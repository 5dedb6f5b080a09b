"""Read and write SentencePiece `tokenizer.model` files (a small protobuf) without protobuf.

Only the fields a GGUF vocabulary needs are handled: the pieces (text, score,
type), the special token ids of the trainer spec and the normalizer's
add_dummy_prefix. Unknown fields are skipped when reading.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from quantize.errors import CheckpointError

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5
NORMAL = 1


@dataclass
class SentencePieceModel:
    pieces: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    add_dummy_prefix: bool = True
    model_type: int = 1  # 1 unigram, 2 BPE


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise CheckpointError("tokenizer.model is truncated: download it again")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes):
    """Yield (field number, wire type, value) over one message's bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _varint(data, pos)
        elif wire == BYTES:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == FIXED32:
            value, pos = data[pos : pos + 4], pos + 4
        elif wire == FIXED64:
            value, pos = data[pos : pos + 8], pos + 8
        else:
            raise CheckpointError("tokenizer.model is not a SentencePiece model")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def parse_model(data: bytes) -> SentencePieceModel:
    model = SentencePieceModel()
    for number, _, value in _fields(data):
        if number == 1:
            piece, score, kind = "", 0.0, NORMAL
            for n, _, v in _fields(value):
                if n == 1:
                    piece = v.decode("utf-8")
                elif n == 2:
                    score = struct.unpack("<f", v)[0]
                elif n == 3:
                    kind = v
            model.pieces.append(piece)
            model.scores.append(score)
            model.types.append(kind)
        elif number == 2:
            for n, _, v in _fields(value):
                ids = {40: "unk_id", 41: "bos_id", 42: "eos_id", 43: "pad_id", 3: "model_type"}
                if n in ids:
                    setattr(model, ids[n], _signed(v))
        elif number == 3:
            for n, _, v in _fields(value):
                if n == 3:
                    model.add_dummy_prefix = bool(v)
    if not model.pieces:
        raise CheckpointError("tokenizer.model holds no pieces: it is damaged, download it again")
    return model


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _key(number, BYTES) + _encode_varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _key(number, VARINT) + _encode_varint(value)


def serialize_model(model: SentencePieceModel) -> bytes:
    out = bytearray()
    for piece, score, kind in zip(model.pieces, model.scores, model.types, strict=True):
        body = _bytes_field(1, piece.encode("utf-8")) + _key(2, FIXED32) + struct.pack("<f", score)
        if kind != NORMAL:
            body += _varint_field(3, kind)
        out += _bytes_field(1, body)
    trainer = _varint_field(3, model.model_type)
    for number, value in ((40, model.unk_id), (41, model.bos_id), (42, model.eos_id)):
        trainer += _varint_field(number, value)
    trainer += _varint_field(43, model.pad_id)
    out += _bytes_field(2, trainer)
    out += _bytes_field(3, _varint_field(3, int(model.add_dummy_prefix)))
    return bytes(out)
