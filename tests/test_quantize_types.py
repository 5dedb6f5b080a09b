"""Every output type of the starter checkpoint: faithful tensors, sane answers, measured quality."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from localllm.engine import LoadOptions
from localllm.engine.llama import load_engine
from localllm.quality import evaluate, heldout_text
from quantize.arch import architecture_for
from quantize.checkpoint import open_checkpoint
from quantize.formats import OUTPUT_TYPES, output_type
from quantize.pipeline import quantize

pytestmark = pytest.mark.slow
Q = gguf.GGMLQuantizationType
SKY = "What colour is the sky on a clear day?"


@pytest.fixture(scope="module")
def outputs(smol_checkpoint, tmp_path_factory):
    """The starter checkpoint in every type; q4_k_m also keeps its 16-bit reference."""
    folder = tmp_path_factory.mktemp("types")
    paths = {}
    for name in OUTPUT_TYPES:
        reference = folder / "reference-f16.gguf" if name == "q4_k_m" else None
        result = quantize(smol_checkpoint, folder / f"smol-{name}.gguf", output_type(name),
                          reference=reference)  # fmt: skip
        paths[name] = result.path
        if reference:
            paths["reference"] = reference
    return paths


def _source_values(checkpoint):
    """GGUF name -> float32 values as the converter hands them to the encoder."""
    ckpt = open_checkpoint(checkpoint)
    arch = architecture_for(ckpt.config)
    values = {}
    for hf_name, tensor in ckpt.tensors.items():
        name = arch.gguf_tensor_name(hf_name)
        if name:
            values[name] = arch.to_gguf(name, tensor.load())
    return values


@pytest.mark.parametrize("kind, qtype, block, bound", [
    ("q8_0", Q.Q8_0, 32, 0.5 / 127),  # round to nearest of 255 steps across +-absmax
    ("q4_0", Q.Q4_0, 32, 1.0 / 8),  # 16 steps; the extreme value may clip by one step
])  # fmt: skip
def test_quantized_tensors_are_within_the_formats_error(
    kind, qtype, block, bound, outputs, smol_checkpoint
):
    source = _source_values(smol_checkpoint)
    seen = 0
    for tensor in gguf.GGUFReader(outputs[kind]).tensors:
        if tensor.tensor_type != qtype:
            continue
        seen += 1
        original = source[tensor.name].reshape(-1, block)
        restored = gguf.quants.dequantize(np.asarray(tensor.data), qtype).reshape(-1, block)
        absmax = np.abs(original).max(axis=1, keepdims=True)
        # the block scale is stored as f16: allow its rounding (2^-11 relative) on top
        allowed = absmax * (bound + 2**-10) + 1e-7
        assert np.all(np.abs(restored - original) <= allowed), tensor.name
    assert seen >= 200  # every projection of every layer


def test_q4_0_keeps_the_output_projection_at_8_bits(outputs):
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(outputs["q4_0"]).tensors}
    assert types["token_embd.weight"] == Q.Q8_0  # tied: it is also the output projection
    assert types["blk.0.attn_q.weight"] == Q.Q4_0
    assert types["blk.0.attn_norm.weight"] == Q.F32


def test_k_quants_use_llama_cpps_mixtures(outputs):
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(outputs["q4_k_m"]).tensors}
    assert Q.Q4_K in types.values()
    assert Q.Q6_K in types.values()  # q4_k_m keeps some tensors at 6 bits
    file_type = gguf.GGUFReader(outputs["q6_k"]).fields["general.file_type"].contents()
    assert file_type == gguf.LlamaFileType.MOSTLY_Q6_K


@pytest.mark.parametrize("kind", list(OUTPUT_TYPES))
def test_every_type_loads_and_still_knows_the_sky_is_blue(kind, outputs):
    """By likelihood, with a margin: which colour greedy decoding names moves with the CPU."""
    engine = load_engine(outputs[kind], LoadOptions(n_ctx=512))
    try:
        prompt = engine.chat_tokens([{"role": "user", "content": SKY}])
        by_colour = {
            colour: engine.score(
                prompt, engine.tokenize(f"The sky is {colour}.", special=False, add_bos=False)
            )
            for colour in ("blue", "green", "red", "yellow")
        }
    finally:
        engine.close()
    ranked = sorted(by_colour.values(), reverse=True)
    assert max(by_colour, key=by_colour.get) == "blue" and ranked[0] - ranked[1] > 1.0, by_colour


def test_perplexity_of_q8_0_and_q4_k_m_against_the_16_bit_model(outputs):
    text = heldout_text()
    q8 = evaluate(outputs["q8_0"], text, outputs["reference"])
    q4 = evaluate(outputs["q4_k_m"], text, outputs["reference"])
    f16 = q8.reference_perplexity
    assert q8.tokens_scored >= 1000
    # q8_0 measured +1.1 % on AVX-512 kernels (they round differently): 3 % leaves headroom
    assert abs(q8.perplexity / f16 - 1) < 0.03, (q8.perplexity, f16)
    assert abs(q4.perplexity / f16 - 1) < 0.10, (q4.perplexity, f16)
    # the coarser format drifts further from the reference, token by token
    assert 0 < q8.kl_mean < q4.kl_mean
    assert q8.top1_agreement > q4.top1_agreement > 0.5
