"""Pure pieces of the quantizer: tokenizer recognition, SentencePiece files, rope factors, names."""

from __future__ import annotations

import hashlib
import json

import gguf
import numpy as np
import pytest
from quantize_helpers import FAMILIES, TINY, tiny_tokenizer, write_tiny_checkpoint

from quantize import pretokenizers
from quantize.arch import architecture_for
from quantize.arch.base import rope_parameters
from quantize.arch.llama import llama3_rope_factors, permute_rows, unpermute_rows
from quantize.errors import UnsupportedModel
from quantize.formats import OUTPUT_TYPES, output_type, tensor_type
from quantize.metadata import model_card_license
from quantize.pipeline import quantize
from quantize.pretokenizers import SECTIONS, identify, pre_tokenizer_name, probe_hash
from quantize.spm_model import SentencePieceModel, parse_model, serialize_model

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192}  # fmt: skip


def _convert(folder, tmp_path) -> gguf.GGUFReader:
    return gguf.GGUFReader(quantize(folder, tmp_path / "out.gguf", output_type("f16")).path)


def _edit_config(folder, **changes) -> None:
    """Change config.json's keys; None removes one."""
    config = {**json.loads((folder / "config.json").read_text()), **changes}
    (folder / "config.json").write_text(
        json.dumps({k: v for k, v in config.items() if v is not None})
    )


@pytest.mark.parametrize("name", list(SECTIONS))
def test_each_known_pre_tokenizer_is_recognised(name):
    assert pre_tokenizer_name(SECTIONS[name], "LlamaForCausalLM") == name


def test_an_unknown_pre_tokenizer_falls_back_by_family_or_not_at_all():
    odd = {"type": "Whitespace"}
    assert pre_tokenizer_name(odd, "Qwen3ForCausalLM") == "qwen2"
    assert pre_tokenizer_name(odd, "LlamaForCausalLM") is None


def test_sentencepiece_models_survive_serialising():
    model = SentencePieceModel(
        pieces=["<unk>", "<s>", "</s>", "▁hola", "ñ", "<0x0A>"],
        scores=[0.0, 0.0, 0.0, -1.5, -7.25, 0.0],
        types=[2, 3, 3, 1, 1, 6],
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, add_dummy_prefix=False, model_type=2,
    )  # fmt: skip
    assert parse_model(serialize_model(model)) == model


def test_rotary_permutation_round_trips_and_interleaves_halves():
    rows = np.arange(16, dtype=np.float32).reshape(8, 2)  # 2 heads of 4 rows
    permuted = permute_rows(rows, 2)
    assert np.array_equal(unpermute_rows(permuted, 2), rows)
    # within a head, rows [0, 1 | 2, 3] become [0, 2, 1, 3]: pairs of the two halves
    assert permuted[:4, 0].tolist() == [0.0, 4.0, 2.0, 6.0]


def test_llama3_rope_scaling_factors():
    config = {"rope_theta": 500000.0, "rope_scaling": {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}}  # fmt: skip
    factors = llama3_rope_factors(config, 128)
    assert factors.shape == (64,)
    assert factors[0] == 1.0 and factors[-1] == 8.0  # fast rotations kept, slow ones stretched
    assert np.all(np.diff(factors) >= 0)
    assert llama3_rope_factors({"rope_theta": 1e4}, 128) is None


def test_norms_and_biases_stay_f32_and_odd_rows_fall_back_to_f16():
    q8 = OUTPUT_TYPES["q8_0"]
    assert tensor_type("blk.0.attn_norm.weight", (576,), q8, False).name == "F32"
    assert tensor_type("blk.0.attn_q.bias", (576,), q8, False).name == "F32"
    assert tensor_type("blk.0.attn_q.weight", (576, 576), q8, False).name == "Q8_0"
    assert tensor_type("blk.0.ffn_down.weight", (576, 100), q8, False).name == "F16"


def test_tied_lm_head_is_dropped_and_unknown_names_are_refused():
    config = {"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2,
              "num_attention_heads": 4, "hidden_size": 64, "tie_word_embeddings": True}  # fmt: skip
    arch = architecture_for(config)
    assert arch.gguf_tensor_name("lm_head.weight") is None
    assert arch.gguf_tensor_name("model.layers.1.self_attn.q_proj.weight") == "blk.1.attn_q.weight"
    assert arch.gguf_tensor_name("model.layers.0.self_attn.rotary_emb.inv_freq") is None
    assert arch.hf_tensor_name("blk.1.attn_q.weight") == "model.layers.1.self_attn.q_proj.weight"


def test_model_card_licence():
    card = "---\nlanguage: en\nlicense: apache-2.0\ntags: [a]\n---\n# Model"
    assert model_card_license(card) == "apache-2.0"
    assert model_card_license("# no front matter\nlicense: mit") is None


def test_rope_settings_read_alike_from_both_config_layouts():
    v4 = {"rope_theta": 5e5, "rope_scaling": {"type": "linear", "factor": 2.0}}
    v5 = {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 5e5}}
    local = {"rope_type": "default", "rope_theta": 1e4}
    by_layer = {"rope_parameters": {"full_attention": v5["rope_parameters"],
                                    "sliding_attention": local}}  # fmt: skip
    for config in (v4, v5, by_layer):
        rope = rope_parameters(config)
        assert (rope["rope_type"], rope["factor"], rope["rope_theta"]) == ("linear", 2.0, 5e5)
    assert rope_parameters({"rope_theta": 1e4, "rope_scaling": None})["rope_type"] == "default"


@pytest.mark.parametrize("layout", [4, 5])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_rope_base_and_head_size_come_from_config_json_in_either_layout(
    family, layout, tmp_path
):
    write_tiny_checkpoint(tmp_path / "ckpt", family, layout=layout, rope={"rope_theta": 1e5})
    fields = _convert(tmp_path / "ckpt", tmp_path).fields
    assert fields[f"{family}.rope.freq_base"].contents() == 1e5  # not the 10000 default
    head_dim = FAMILIES[family][2].get("head_dim", TINY["hidden_size"] // 4)
    assert fields[f"{family}.attention.key_length"].contents() == head_dim
    assert fields[f"{family}.attention.value_length"].contents() == head_dim


@pytest.mark.parametrize("layout", [4, 5])
def test_llama3_rope_factors_come_from_either_layout(layout, tmp_path):
    write_tiny_checkpoint(tmp_path / "ckpt", "llama", layout=layout, rope=LLAMA3)
    tensors = {t.name: t for t in _convert(tmp_path / "ckpt", tmp_path).tensors}
    expected = llama3_rope_factors({"rope_theta": 1e4, "rope_scaling": LLAMA3}, 16)
    assert np.array_equal(np.asarray(tensors["rope_freqs.weight"].data), expected)


@pytest.mark.parametrize("layout", [4, 5])
def test_yarn_scaling_is_written_from_either_layout(layout, tmp_path):
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256}
    write_tiny_checkpoint(tmp_path / "ckpt", "qwen2", layout=layout, rope=yarn)
    fields = _convert(tmp_path / "ckpt", tmp_path).fields
    assert fields["qwen2.rope.scaling.type"].contents() == "yarn"
    assert fields["qwen2.rope.scaling.factor"].contents() == 4.0
    assert fields["qwen2.rope.scaling.original_context_length"].contents() == 256


def test_gemma3_rope_parameters_by_layer_type(tmp_path):
    """transformers 5 keys Gemma 3's settings by layer type: global layers scaled, local not."""
    write_tiny_checkpoint(tmp_path / "ckpt", "gemma3")
    _edit_config(tmp_path / "ckpt", rope_theta=None, rope_scaling=None, rope_parameters={
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
        "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})  # fmt: skip
    fields = _convert(tmp_path / "ckpt", tmp_path).fields
    assert fields["gemma3.rope.freq_base"].contents() == 1e6
    assert fields["gemma3.rope.freq_base_swa"].contents() == 1e4
    assert fields["gemma3.rope.scaling.type"].contents() == "linear"
    assert fields["gemma3.rope.scaling.factor"].contents() == 8.0


@pytest.mark.parametrize("layout", [4, 5])
def test_a_missing_rope_base_is_an_error_naming_it(layout, tmp_path):
    write_tiny_checkpoint(tmp_path / "ckpt", "llama", layout=layout)
    if layout == 4:
        _edit_config(tmp_path / "ckpt", rope_theta=None)
    else:
        _edit_config(tmp_path / "ckpt", rope_parameters={"rope_type": "default"})
    with pytest.raises(UnsupportedModel, match=r"config\.json has no rope_theta"):
        _convert(tmp_path / "ckpt", tmp_path)
    assert not (tmp_path / "out.gguf").exists()


def test_an_unknown_rope_type_or_a_missing_factor_is_an_error_naming_it(tmp_path):
    write_tiny_checkpoint(tmp_path / "ckpt", "qwen2", layout=5, rope={"rope_type": "dynamic"})
    with pytest.raises(UnsupportedModel, match="rope_type 'dynamic'"):
        _convert(tmp_path / "ckpt", tmp_path)
    without_low = {k: v for k, v in LLAMA3.items() if k != "low_freq_factor"}
    with pytest.raises(UnsupportedModel, match="no low_freq_factor"):
        llama3_rope_factors({"rope_parameters": {**without_low, "rope_theta": 5e5}}, 128)


def test_a_missing_rms_norm_eps_is_an_error_naming_it(tmp_path):
    write_tiny_checkpoint(tmp_path / "ckpt", "qwen2")
    _edit_config(tmp_path / "ckpt", rms_norm_eps=None)
    with pytest.raises(UnsupportedModel, match=r"config\.json has no rms_norm_eps"):
        _convert(tmp_path / "ckpt", tmp_path)


def test_the_probe_text_is_the_references_to_the_byte():
    # sha256 of convert_hf_to_gguf.py's chktxt, UTF-8 encoded
    digest = hashlib.sha256(pretokenizers.CHKTXT.encode()).hexdigest()
    assert digest == "a36179c1e2b1cfcfbfad1dc779addad2ffc778201e4cf0d538bddeafa2c526da"
    table = pretokenizers.probe_hashes()
    assert table["855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249"] == "smollm"
    assert table["0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5"] == "llama-bpe"
    assert table["e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea"] == "qwen2"
    assert table["3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454"] == "gpt-2"


def test_the_probe_hash_names_the_pre_tokenizer_whatever_the_structure_says(tmp_path, monkeypatch):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(tiny_tokenizer("smollm")))
    digest = probe_hash(path)
    assert digest is not None
    monkeypatch.setattr(pretokenizers, "probe_hashes", lambda: {digest: "smollm"})
    # the structure alone would say gpt-2: the hash of what the file does wins
    assert identify(path, SECTIONS["gpt-2"], "LlamaForCausalLM") == "smollm"


def test_an_unknown_probe_hash_falls_back_to_the_structure_with_a_warning(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(tiny_tokenizer("qwen2")))
    with pytest.warns(UserWarning, match="chose 'qwen2' from its structure"):
        assert identify(path, SECTIONS["qwen2"], "Qwen2ForCausalLM") == "qwen2"
