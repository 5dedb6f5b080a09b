"""Tiny random-weight checkpoints of the other registered families: convert, load, generate."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
from quantize_helpers import (
    FAMILIES,
    generate,
    write_tiny_checkpoint,
    write_tiny_gemma3_multimodal,
)

from localllm.engine.scoring import TokenScorer
from quantize.arch import registered
from quantize.export import export_checkpoint
from quantize.formats import output_type
from quantize.pipeline import quantize
from quantize.safetensors_io import read_tensor_index


def test_every_family_in_the_issue_is_registered():
    names = set(registered())
    assert {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "Gemma3ForCausalLM",
        "Gemma3ForConditionalGeneration",
        "Phi3ForCausalLM",
    } <= names


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_random_checkpoint_converts_loads_and_generates(family, kind, tmp_path):
    write_tiny_checkpoint(tmp_path / "ckpt", family)
    path = quantize(tmp_path / "ckpt", tmp_path / "tiny.gguf", output_type(kind)).path
    fields = gguf.GGUFReader(path).fields
    arch = fields["general.architecture"].contents()
    assert arch == family  # the GGUF architecture name matches
    assert fields[f"{arch}.block_count"].contents() == 2
    _, count = generate(path, "the tin cup", n=8)
    assert count >= 1
    scorer = TokenScorer(path, 64)
    try:
        logprobs = scorer.logprobs(scorer.tokenize("the heater is on"))
        assert np.isfinite(logprobs).all()
    finally:
        scorer.close()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_random_checkpoint_survives_a_round_trip_through_gguf(family, tmp_path):
    """Checkpoint -> f16 GGUF -> exporter: the same tensors under the same names."""
    original = write_tiny_checkpoint(tmp_path / "ckpt", family)
    path = quantize(tmp_path / "ckpt", tmp_path / "tiny.gguf", output_type("f16")).path
    back = export_checkpoint(path, tmp_path / "back")
    restored = {n: t.load() for n, t in read_tensor_index(back / "model.safetensors").items()}
    assert set(restored) == set(original)
    for name, values in original.items():
        bf16 = values.astype(np.float32)  # written as bf16, read back exactly as f16 allows
        assert np.allclose(restored[name], bf16, rtol=2e-2, atol=1e-3), name
    config = json.loads((back / "config.json").read_text())
    assert config["architectures"] == [FAMILIES[family][0]]
    assert config["num_key_value_heads"] == 2


def test_gemma3_multimodal_checkpoints_convert_their_text_model(tmp_path):
    write_tiny_gemma3_multimodal(tmp_path / "ckpt")
    path = quantize(tmp_path / "ckpt", tmp_path / "tiny.gguf", output_type("f16")).path
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == "gemma3"
    names = {t.name for t in reader.tensors}
    assert "blk.1.post_ffw_norm.weight" in names and "output.weight" in names
    assert not any("vision" in n or "mm_" in n for n in names)  # the vision tower is left out
    _, count = generate(path, "the tin cup", n=4)
    assert count >= 1
