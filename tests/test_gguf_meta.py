import struct

import pytest
from gguf_damage import copy_with_equal_tokens

from localllm.errors import InvalidModelFile
from localllm.gguf_meta import read_gguf_info


def test_reads_the_starter_header(starter_path):
    info = read_gguf_info(starter_path)
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert info.block_count == 30
    assert info.file_type == "Q4_1"
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert info.get("tokenizer.ggml.tokens") == 49152  # big arrays are skipped, not decoded
    assert 130e6 < info.parameter_count < 140e6
    # 30 layers x 3 KV heads x (64 + 64) dims x 2 bytes
    assert info.kv_bytes_per_token() == 30 * 3 * 128 * 2
    last = max(info.tensors, key=lambda t: t.offset)
    assert info.data_offset + last.offset + last.n_bytes <= info.size


def test_rejects_a_wrong_version(tmp_path):
    path = tmp_path / "v9.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 9, 0, 0))
    with pytest.raises(InvalidModelFile, match="unsupported GGUF version 9"):
        read_gguf_info(path)


def test_rejects_a_header_without_architecture(tmp_path):
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    with pytest.raises(InvalidModelFile, match=r"general\.architecture"):
        read_gguf_info(path)


def test_rejects_an_absurd_string_length(tmp_path):
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 2**40))
    with pytest.raises(InvalidModelFile, match="damaged"):
        read_gguf_info(path)


def _str(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("<Q", len(data)) + data


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _str(key) + struct.pack("<I", vtype) + payload


def _u32(key: str, value: int) -> bytes:
    return _kv(key, 4, struct.pack("<I", value))


def _tokens(*tokens: str | bytes) -> bytes:
    payload = struct.pack("<IQ", 8, len(tokens)) + b"".join(_str(t) for t in tokens)
    return _kv("tokenizer.ggml.tokens", 9, payload)


ARCH = _kv("general.architecture", 8, _str("llama"))
TWO_SCORES = _kv("tokenizer.ggml.scores", 9, struct.pack("<IQff", 6, 2, 0.0, 0.0))


def _gguf(path, *kvs: bytes, tensors=(), align: int = 32):
    """A small GGUF file; tensors are (name, shape, ggml type, offset or None for the next)."""
    infos, end = b"", 0
    for name, shape, ggml_type, offset in tensors:
        dims = b"".join(struct.pack("<Q", d) for d in shape)
        start = end if offset is None else offset
        infos += _str(name) + struct.pack("<I", len(shape)) + dims
        infos += struct.pack("<IQ", ggml_type, start)
        n = 4
        for d in shape:
            n *= d
        end = start + (n + align - 1) // align * align
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs) + 1) + ARCH + b"".join(kvs)
    head += infos
    data = min(end, 2**16)  # absurd shapes are refused before their data is looked for
    path.write_bytes(head + b"\0" * ((-len(head)) % align + data))
    return path


F32, Q4_1 = 0, 3


@pytest.mark.parametrize(
    ("kvs", "tensors", "message"),
    [
        ((_tokens("a", "b", "a"),), (), "token 2 of the vocabulary repeats"),
        # llama.cpp compares tokens as C strings: up to the first NUL byte
        ((_tokens(b"ab\0c", "b", "ab"),), (), "token 2 of the vocabulary repeats"),
        ((_tokens("a", "b", "c"), TWO_SCORES), (), "scores has 2 entries for 3 tokens"),
        ((_u32("llama.block_count", 0),), (), "block_count is 0"),
        ((_u32("llama.block_count", 30 + 2**24),), (), "block_count is 16777246"),
        ((_u32("llama.expert_count", 8), _u32("llama.expert_used_count", 9)), (), "expert counts"),
        ((_u32("general.alignment", 24),), (), "alignment 24 is not a power of 2"),
        ((), (("a", (4, 2), F32, None), ("b", (4,), F32, 64)), "tensor b starts at 64, not 32"),
        ((), (("a", (4, 0), F32, None),), "tensor a has a dimension of 0"),
        ((), (("a", (4, 2**64 - 2), F32, None),), "tensor a has a dimension of"),
        ((), (("a", (1, 1, 1, 1, 1), F32, None),), "tensor a has 5 dimensions"),
        ((), (("a", (4,), 77, None),), "tensor a has unknown type 77"),
        ((), (("a", (16, 2), Q4_1, None),), "do not fill whole Q4_1 blocks"),
        ((_kv("tokenizer.ggml.merges", 9, struct.pack("<IQ", 8, 2**62)),), (), "cut short"),
        ((_kv("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 2**62)),), (), "cut short"),
    ],
)
def test_rejects_what_llama_cpp_would_abort_or_refuse_on(tmp_path, kvs, tensors, message):
    path = _gguf(tmp_path / "damaged.gguf", *kvs, tensors=tensors)
    with pytest.raises(InvalidModelFile, match="damaged") as caught:
        read_gguf_info(path)
    assert message in str(caught.value)
    assert "download it again" in str(caught.value)


def test_accepts_what_llama_cpp_accepts(tmp_path):
    path = _gguf(
        tmp_path / "fine.gguf",
        _tokens("", "b", ""),  # empty tokens are renamed [EMPTY_<i>], so they differ
        _u32("llama.block_count", 2),
        _u32("llama.expert_count", 8),
        _u32("llama.expert_used_count", 2),
        tensors=(("a", (4, 2), F32, None), ("b", (3,), F32, None)),
    )
    info = read_gguf_info(path)
    assert info.get("tokenizer.ggml.tokens") == 3
    assert [t.offset for t in info.tensors] == [0, 32]


def test_rejects_two_equal_tokens_in_the_starter_model(starter_path, tmp_path):
    copy = tmp_path / "equal-tokens.gguf"
    _, second = copy_with_equal_tokens(starter_path, copy)
    with pytest.raises(InvalidModelFile, match=f"token {second} of the vocabulary repeats"):
        read_gguf_info(copy)


def test_a_header_read_again_after_the_file_changes(tmp_path):
    path = _gguf(tmp_path / "model.gguf", _u32("llama.block_count", 2))
    assert read_gguf_info(path).block_count == 2
    assert read_gguf_info(path) is read_gguf_info(path)  # kept while the file is unchanged
    # rewritten in place (same path and inode); a longer header, as mtime may be coarse
    _gguf(path, _u32("llama.block_count", 0), _u32("llama.context_length", 64))
    with pytest.raises(InvalidModelFile, match="block_count is 0"):
        read_gguf_info(path)
