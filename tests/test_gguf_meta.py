import struct

import pytest

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
