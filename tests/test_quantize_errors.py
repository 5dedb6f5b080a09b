"""Bad input gets an error naming the file or tensor; interrupted runs leave nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_cli
from quantize_helpers import write_tiny_checkpoint

from quantize.errors import CheckpointError, NotEnoughSpace, UnsupportedModel
from quantize.files import check_space, remove_stale_partials
from quantize.formats import output_type
from quantize.pipeline import quantize


@pytest.fixture
def tiny(tmp_path):
    write_tiny_checkpoint(tmp_path / "ckpt", "qwen2")
    return tmp_path / "ckpt"


def _convert(folder, tmp_path):
    return quantize(folder, tmp_path / "out.gguf", output_type("q8_0"))


def _split_into_shards(folder):
    """Rewrite a one-file checkpoint as two shards with an index."""
    from quantize.safetensors_io import SafetensorsWriter, read_tensor_index

    tensors = read_tensor_index(folder / "model.safetensors")
    names = list(tensors)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2 :]}  # fmt: skip
    weight_map = {}
    for filename, part in halves.items():
        shapes = {n: (tensors[n].dtype, tensors[n].shape) for n in part}
        writer = SafetensorsWriter(folder / filename, shapes)
        for name in part:
            writer.write(name, tensors[name].load())
            weight_map[name] = filename
        writer.close()
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def test_a_missing_shard_is_named(tiny, tmp_path):
    _split_into_shards(tiny)
    (tiny / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(
        CheckpointError, match=r"shard model-00002-of-00002\.safetensors is missing"
    ):
        _convert(tiny, tmp_path)
    assert not (tmp_path / "out.gguf").exists()


def test_a_tensor_missing_from_its_shard_is_named(tiny, tmp_path):
    _split_into_shards(tiny)
    index = json.loads((tiny / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.layers.1.mlp.extra.weight"] = "model-00001-of-00002.safetensors"
    (tiny / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"model\.layers\.1\.mlp\.extra\.weight"):
        _convert(tiny, tmp_path)


def test_a_shape_mismatch_names_the_tensor(tiny, tmp_path):
    config = json.loads((tiny / "config.json").read_text())
    config["intermediate_size"] = 96  # the weights say 128
    (tiny / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        UnsupportedModel, match=r"model\.layers\.0\.mlp\.\w+_proj\.weight has shape"
    ):
        _convert(tiny, tmp_path)


def test_an_unknown_tensor_is_named(tmp_path):
    from quantize.safetensors_io import SafetensorsWriter, read_tensor_index

    folder = tmp_path / "ckpt"
    write_tiny_checkpoint(folder, "qwen3")
    tensors = read_tensor_index(folder / "model.safetensors")
    shapes = {n: (t.dtype, t.shape) for n, t in tensors.items()}
    values = {n: t.load() for n, t in tensors.items()}
    shapes["model.layers.0.mystery_gate.weight"] = ("F32", (4, 4))
    values["model.layers.0.mystery_gate.weight"] = values["model.norm.weight"][:16].reshape(4, 4)
    writer = SafetensorsWriter(folder / "model.safetensors", shapes)
    for name in shapes:
        writer.write(name, values[name])
    writer.close()
    with pytest.raises(UnsupportedModel, match=r"model\.layers\.0\.mystery_gate\.weight"):
        _convert(folder, tmp_path)


def test_a_corrupted_safetensors_header_names_the_file(tiny, tmp_path):
    data = bytearray((tiny / "model.safetensors").read_bytes())
    data[10:30] = b"\x00garbage-not-json!!!"
    (tiny / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors has a damaged safetensors header"
    ):
        _convert(tiny, tmp_path)


def test_a_truncated_shard_is_named(tiny, tmp_path):
    path = tiny / "model.safetensors"
    os.truncate(path, path.stat().st_size - 1000)
    with pytest.raises(CheckpointError, match=r"model\.safetensors is truncated"):
        _convert(tiny, tmp_path)


@pytest.mark.parametrize("architecture, kind", [
    ("BertModel", "an encoder-only model"), ("T5EncoderModel", "an encoder-only model"),
    ("MambaForCausalLM", "not supported"),
])  # fmt: skip
def test_unsupported_architectures_name_what_is_supported(architecture, kind, tiny, tmp_path):
    config = json.loads((tiny / "config.json").read_text())
    config["architectures"] = [architecture]
    (tiny / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModel, match=f"{architecture} is {kind}.*Qwen2ForCausalLM"):
        _convert(tiny, tmp_path)


def test_a_folder_without_config_is_not_a_checkpoint(tmp_path):
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        _convert(tmp_path / "ckpt", tmp_path)


def test_no_tokenizer_files_is_explained(tiny, tmp_path):
    (tiny / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match=r"neither tokenizer\.json nor tokenizer\.model"):
        _convert(tiny, tmp_path)


def test_not_enough_disk_space_is_refused_before_writing(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(NotEnoughSpace, match="free some space"):
        check_space(tmp_path, free * 2, "the output")


def test_the_cli_reports_bad_input_in_one_line(tiny, fresh_home):
    (tiny / "tokenizer.json").unlink()
    proc = run_cli("quantize", str(tiny), "--type", "q8_0", home=fresh_home)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert (
        not list((fresh_home / "data" / "models").rglob("*.gguf")) if fresh_home.exists() else True
    )


def _start_conversion(src, out):
    code = (
        "import sys; from pathlib import Path; from quantize.pipeline import quantize; "
        "from quantize.formats import output_type; "
        "quantize(Path(sys.argv[1]), Path(sys.argv[2]), output_type('f16'))"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(src), str(out)])


def _wait_for_partial(folder, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        partial = list(folder.glob(".*.partial"))
        if partial and partial[0].stat().st_size > 50 * 2**20:
            return partial[0]
        time.sleep(0.05)
    pytest.fail("the conversion never got under way")


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_conversion_leaves_no_file(how, smol_checkpoint, tmp_path):
    out = tmp_path / "out" / "smol-f16.gguf"
    out.parent.mkdir()
    proc = _start_conversion(smol_checkpoint, out)
    _wait_for_partial(out.parent, proc)
    proc.send_signal(how)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert list(out.parent.iterdir()) == []  # no output, no partial file


@pytest.mark.slow
def test_a_killed_conversion_leaves_no_output_and_the_next_run_cleans_up(smol_checkpoint, tmp_path):
    out = tmp_path / "out" / "smol-f16.gguf"
    out.parent.mkdir()
    proc = _start_conversion(smol_checkpoint, out)
    partial = _wait_for_partial(out.parent, proc)
    proc.kill()
    proc.wait(timeout=60)
    assert not out.exists()  # only the hidden partial file may be left by SIGKILL
    assert remove_stale_partials(out.parent) == [partial]
    assert list(out.parent.iterdir()) == []
