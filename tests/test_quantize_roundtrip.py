"""Round trips on the two real models: GGUF -> Hugging Face checkpoint -> localllm quantize -> GGUF.

The exporter dequantizes the original, undoes the GGUF-side transforms (llama's
rotary permutation, Gemma's norm offset) and writes safetensors plus the
tokenizer files; converting that checkpoint back must give what llama.cpp
itself makes of the original.
"""

from __future__ import annotations

import functools
import json

import gguf
import numpy as np
import pytest

from localllm.engine import LoadOptions
from localllm.engine.llama import load_engine
from quantize.formats import output_type
from quantize.native import llama_quantize
from quantize.pipeline import quantize
from quantize.pretokenizers import probe_hash, probe_hashes

pytestmark = pytest.mark.slow

MULTILINGUAL = (
    "Ñandú y cigüeña: ¿qué pasó? Déjà vu, naïve café. Straße 🤖🎉 日本語 Привет\n"
    "def f(x):\n\treturn x ** 2  # 12345 + 0.5\n"
)
# How closely a conversion must predict like the original over every scored position of the
# held-out text (about a thousand). Measured on AVX2: mean KL 0.0026-0.0047 nats, top-1
# agreement 0.953-0.962, perplexity within 0.8 % (the originals are 4-bit: llama.cpp rounds
# their activations to 8 bits, the 16-bit conversions do not). Bounds have 4x headroom. Not
# greedy strings: 32 greedy tokens part at the first near-tie, which moves with the CPU.
MAX_KL, MIN_TOP1, MAX_PERPLEXITY_SHIFT = 0.02, 0.90, 0.03


# llama.cpp writes this only when a tokenizer asks; absent, it means the same (false).
DEFAULTED_KEYS = {"tokenizer.ggml.add_sep_token"}


@functools.cache
def _reader(path) -> gguf.GGUFReader:
    return gguf.GGUFReader(path)  # parsing a 262k-token vocabulary takes seconds: once per file


def _tensors(path):
    return {t.name: t for t in _reader(path).tensors}


def _token_ids(path, text):
    engine = load_engine(path, LoadOptions(n_ctx=256))
    try:
        return engine.tokenize(text, special=False)
    finally:
        engine.close()


@pytest.fixture(scope="module")
def converted(smol_checkpoint, gemma_checkpoint, tmp_path_factory):
    """f16 and bf16 conversions of both exported checkpoints."""
    folder = tmp_path_factory.mktemp("converted")
    paths = {}
    for model, checkpoint in (("smol", smol_checkpoint), ("gemma", gemma_checkpoint)):
        for kind in ("f16", "bf16"):
            paths[model, kind] = quantize(checkpoint, folder / f"{model}-{kind}.gguf",
                                          output_type(kind)).path  # fmt: skip
    return paths


def test_exported_checkpoints_look_like_hugging_face_ones(smol_checkpoint, gemma_checkpoint):
    smol = json.loads((smol_checkpoint / "config.json").read_text())
    assert smol["architectures"] == ["LlamaForCausalLM"] and smol["tie_word_embeddings"]
    index = json.loads((smol_checkpoint / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 3  # sharded, with an index
    assert (smol_checkpoint / "tokenizer.json").is_file()
    assert "chat_template" in json.loads((smol_checkpoint / "tokenizer_config.json").read_text())
    gemma = json.loads((gemma_checkpoint / "config.json").read_text())
    assert gemma["architectures"] == ["Gemma3ForCausalLM"]
    assert (gemma_checkpoint / "tokenizer.model").is_file()


@pytest.mark.one_build  # bytes against bytes
@pytest.mark.parametrize("model", ["smol", "gemma"])
def test_f16_conversion_is_bit_identical_to_llama_cpps_f16_of_the_original(
    model, converted, starter_path, gemma_path, tmp_path
):
    original = starter_path if model == "smol" else gemma_path
    theirs = tmp_path / "llama-cpp-f16.gguf"
    llama_quantize(original, theirs, output_type("f16"), expected_bytes=1, allow_requantize=True)
    ours, reference = _tensors(converted[model, "f16"]), _tensors(theirs)
    assert set(ours) == set(reference)
    for name, tensor in reference.items():
        assert ours[name].tensor_type == tensor.tensor_type, name
        assert np.array_equal(np.asarray(ours[name].data), np.asarray(tensor.data)), name


@pytest.mark.one_build  # header keys and vocabulary bytes
@pytest.mark.parametrize("model", ["smol", "gemma"])
def test_hyperparameters_and_vocabulary_survive_the_round_trip(
    model, converted, starter_path, gemma_path
):
    original = starter_path if model == "smol" else gemma_path
    before = _reader(original).fields
    after = _reader(converted[model, "f16"]).fields
    arch = before["general.architecture"].contents()
    kept = [
        k for k in before if k.startswith((f"{arch}.", "tokenizer.")) and k not in DEFAULTED_KEYS
    ]
    assert kept, "the original has no metadata to compare"
    for key in kept:
        assert key in after, key
        assert after[key].contents() == before[key].contents(), key
    assert after["general.quantized_by"].contents() == "localllm"


def test_smollms_tokenizer_hashes_to_the_name_llama_cpp_gives_it(smol_checkpoint):
    """The probe hash of the real vocabulary is in the reference's table, under smollm."""
    assert probe_hashes().get(probe_hash(smol_checkpoint / "tokenizer.json")) == "smollm"


@pytest.mark.parametrize("model", ["smol", "gemma"])
def test_token_ids_equal_the_originals_on_a_multilingual_sample(
    model, converted, starter_path, gemma_path
):
    original = starter_path if model == "smol" else gemma_path
    expected = _token_ids(original, MULTILINGUAL)
    assert len(expected) > 30
    assert _token_ids(converted[model, "f16"], MULTILINGUAL) == expected
    assert _token_ids(converted[model, "bf16"], MULTILINGUAL) == expected


# bf16 measures like f16 (KL within 5 % of it): the second kernel build checks f16 only.
@pytest.mark.parametrize("kind", ["f16", pytest.param("bf16", marks=pytest.mark.one_build)])
@pytest.mark.parametrize("model", ["smol", "gemma"])
def test_conversions_predict_like_the_original(model, kind, converted, starter_path, gemma_path):
    """Next-token distributions of the conversion against the original's, position by
    position: mean KL divergence and how often both pick the same token."""
    from localllm.quality import evaluate, heldout_text

    original = starter_path if model == "smol" else gemma_path
    report = evaluate(converted[model, kind], heldout_text(), original)
    assert report.tokens_scored >= 500
    assert report.kl_mean < MAX_KL, report
    assert report.top1_agreement > MIN_TOP1, report
    assert abs(report.perplexity / report.reference_perplexity - 1) < MAX_PERPLEXITY_SHIFT, report
