"""The first load of a new model file, tried in a child process (store/probe.py)."""

from __future__ import annotations

import os
import struct
import sys

import pytest
from gguf_damage import copy_with_equal_tokens

from localllm.config import Settings
from localllm.errors import ModelLoadError
from localllm.store import probe


def _settings(tmp_path) -> Settings:
    return Settings.from_env({"LOCALLLM_HOME": str(tmp_path / "home")})


def _header_only(path):
    arch = struct.pack("<Q", 20) + b"general.architecture" + struct.pack("<IQ", 8, 5) + b"llama"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + arch)
    return path


# Children in place of llama.cpp's (spawned: they must be importable by name, so live here).
def aborting_child(path, verbose, stderr_path):
    with open(stderr_path, "w") as log:
        print("/src/llama-vocab.cpp:2544: GGML_ASSERT(a == b) failed", file=log)
    os.abort()


def passing_child(path, verbose, stderr_path):
    pass


def refusing_child(path, verbose, stderr_path):
    sys.exit(probe.REFUSED)


def test_a_crash_in_the_child_is_one_error(tmp_path, monkeypatch):
    monkeypatch.setattr(probe, "_probe_child", aborting_child)
    with pytest.raises(ModelLoadError) as caught:
        probe.check_loadable(_settings(tmp_path), _header_only(tmp_path / "m.gguf"))
    message = str(caught.value)
    assert message.startswith("llama.cpp crashed reading m.gguf (SIGABRT: llama-vocab.cpp:2544: ")
    assert "GGML_ASSERT(a == b) failed" in message
    assert message.endswith("download it again") and "\n" not in message


def test_a_file_that_passed_is_not_tried_again_until_it_changes(tmp_path, monkeypatch):
    settings, model = _settings(tmp_path), _header_only(tmp_path / "m.gguf")
    monkeypatch.setattr(probe, "_probe_child", passing_child)
    probe.check_loadable(settings, model)
    assert (settings.cache_dir / probe.RECORD_NAME).is_file()

    def no_child(path, verbose):
        raise AssertionError("tried again")

    monkeypatch.setattr(probe, "_run_probe", no_child)
    probe.check_loadable(settings, model)
    os.utime(model, ns=(1, 1))
    with pytest.raises(AssertionError, match="tried again"):
        probe.check_loadable(settings, model)


def test_a_refused_file_is_left_to_the_real_load(tmp_path, monkeypatch):
    settings = _settings(tmp_path)
    monkeypatch.setattr(probe, "_probe_child", refusing_child)
    probe.check_loadable(settings, _header_only(tmp_path / "m.gguf"))
    assert not (settings.cache_dir / probe.RECORD_NAME).exists()


def test_the_starter_model_passes(starter_path, tmp_path):
    settings = _settings(tmp_path)
    probe.check_loadable(settings, starter_path)
    assert str(starter_path.resolve()) in (settings.cache_dir / probe.RECORD_NAME).read_text()


def test_llama_cpps_abort_on_equal_tokens_becomes_an_error(starter_path, tmp_path, monkeypatch):
    """What the header check now catches first, run past it: the child's abort is reported."""
    copy = tmp_path / "equal-tokens.gguf"
    copy_with_equal_tokens(starter_path, copy)
    monkeypatch.setattr(probe, "read_gguf_info", lambda path: None)
    with pytest.raises(ModelLoadError) as caught:
        probe.check_loadable(_settings(tmp_path), copy)
    assert "SIGABRT: llama-vocab.cpp:" in str(caught.value)
    assert "GGML_ASSERT(id_to_token.size() == token_to_id.size()) failed" in str(caught.value)


def test_only_a_crash_counts_as_one():
    assert probe.crash_name(-6) == "SIGABRT"
    assert probe.crash_name(-11) == "SIGSEGV"
    assert probe.crash_name(-9) is None  # killed (out of memory, the user): no verdict
    assert probe.crash_name(1) is None and probe.crash_name(None) is None
