"""Part length from the model's shape: shorter than the window where prefill slows down, and
each part's summary a share of its part."""

from __future__ import annotations

import pytest
from conftest import RecordingEngine
from test_summarize import long_document, summarizer, write

from localllm.documents.readers import open_document
from localllm.engine.prefix import common_prefix
from localllm.gguf_meta import read_gguf_info
from localllm.summarize.prompts import prompts_for
from localllm.summarize.sizing import attention_half_depth, part_summary_tokens, part_tokens


@pytest.mark.model
def test_a_small_model_gets_parts_shorter_than_a_long_window(starter_path):
    info = read_gguf_info(starter_path)
    depth = attention_half_depth(info)
    # SmolLM2-135M: 30 layers of width 576; attention over ~3.9k tokens costs what its
    # weights do (llama-bench: 285 tok/s prefill at depth 0, 141 tok/s 3,072 tokens in).
    assert 3000 < depth < 5000
    chosen = part_tokens(7800, info, 100)
    assert 768 < chosen < 1500
    # More prompt around each part makes longer parts pay; never past the window.
    assert part_tokens(7800, info, 400) > chosen
    assert part_tokens(7800, info, 10**6) == 7800
    # Never shorter than 768, where a summary's floor (96 tokens) is its share (or the
    # window, when it is shorter): the few template tokens parts repeat put them there.
    assert part_tokens(7800, info, 1) == 768
    assert part_tokens(7800, info, 8) == 768
    assert part_tokens(300, info, 100) == 300
    # On a GPU prefill is cheap next to the summaries written: the window wins.
    assert part_tokens(7800, info, 100, on_gpu=True) == 7800


def test_a_part_summary_is_a_share_of_its_part_within_bounds():
    assert part_summary_tokens(1024, 256) == 128
    assert part_summary_tokens(4000, 256) == 256  # capped by what a reply may take
    assert part_summary_tokens(200, 256) == 96  # a short part still gets a sentence or two
    assert part_summary_tokens(200, 64) == 64  # a small window's cap wins


@pytest.mark.slow
@pytest.mark.one_build  # call budgets, not what the model wrote
def test_every_part_is_asked_for_a_summary_of_its_share(engine, tmp_path):
    recorder = RecordingEngine(engine)  # n_ctx 2048: parts shorter than the window
    doc = open_document(str(write(tmp_path, "long.txt", long_document(4))), tmp_path)
    job = summarizer(recorder, tmp_path, cache=False, length="short")
    result = job.summarize(doc)
    stats = result.stats
    assert stats["map_calls"] >= 2
    # Clearly shorter than what the window holds (about n_ctx - 2 * map_reserve here)...
    assert stats["part_tokens"] < engine.n_ctx - 2 * job.map_reserve
    # ...and each part asked for a share of it, below what a merge reply may take.
    reserves = [reserve for _, reserve in recorder.calls[: stats["map_calls"]]]
    assert set(reserves) == {stats["part_summary_tokens"]}
    assert stats["part_summary_tokens"] < job.map_reserve


@pytest.mark.one_build  # how prompts tokenize, not what the model writes
@pytest.mark.parametrize("lang", ["en", "es", "fr", "de", "pt", "it"])
def test_every_part_prompt_is_the_same_up_to_its_text(engine, lang):
    # The instruction comes before the part, so an engine computes it once per slot (or
    # copies it between slots) and each part prefills its own text and a few template tokens.
    prompts = prompts_for(lang)

    def part_prompt(text: str) -> list[int]:
        user = prompts.chunk.format(text=text)
        return engine.chat_tokens([{"role": "system", "content": prompts.system},
                                   {"role": "user", "content": user}])  # fmt: skip

    text = "El viejo molino fue vendido por una comisión de 794 personas."
    mine, other = part_prompt(text), part_prompt("The bridge was opened in 1902.")
    unshared = len(mine) - common_prefix(mine, other)
    assert unshared <= len(engine.tokenize(text, special=False, add_bos=False)) + 8
    assert len(mine) - len(part_prompt("")) > 8  # the part's own text is in it
