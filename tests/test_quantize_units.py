"""Pure pieces of the quantizer: tokenizer recognition, SentencePiece files, rope factors, names."""

from __future__ import annotations

import numpy as np
import pytest

from quantize.arch import architecture_for
from quantize.arch.llama import llama3_rope_factors, permute_rows, unpermute_rows
from quantize.formats import OUTPUT_TYPES, tensor_type
from quantize.metadata import model_card_license
from quantize.pretokenizers import SECTIONS, pre_tokenizer_name
from quantize.spm_model import SentencePieceModel, parse_model, serialize_model


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
