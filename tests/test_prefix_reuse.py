"""The engine's prefix-reuse rule, as a decision table, and on the starter model.

No recurrent or hybrid model (Qwen3.5, LFM2, Granite-H) runs on the test machine, so their
side of the rule is asserted on the table the engines consult: a state that cannot be cut
back is continued when the cache is all prefix of the prompt, and rebuilt otherwise."""

from __future__ import annotations

import pytest

from localllm.engine.prefix import Reuse, can_cut_back, choose_donor, plan_reuse

CASES = [
    # cached, prompt, can_cut -> Reuse
    ([], [1, 2, 3], True, Reuse(0, cut=False, rebuild=False)),
    ([1, 2], [1, 2, 3, 4], True, Reuse(2, cut=False, rebuild=False)),  # a chat's next turn
    ([1, 2], [1, 2, 3, 4], False, Reuse(2, cut=False, rebuild=False)),  # continued as it is
    ([1, 2, 9, 9], [1, 2, 3], True, Reuse(2, cut=True, rebuild=False)),  # drop the old tail
    ([1, 2, 9, 9], [1, 2, 3], False, Reuse(0, cut=False, rebuild=True)),  # cannot: rebuild
    ([1, 2, 3], [1, 2, 3], True, Reuse(2, cut=True, rebuild=False)),  # last token again
    ([1, 2, 3], [1, 2, 3], False, Reuse(0, cut=False, rebuild=True)),
    ([5, 6], [1, 2, 3], True, Reuse(0, cut=False, rebuild=True)),  # nothing shared
    ([5, 6], [1, 2, 3], False, Reuse(0, cut=False, rebuild=True)),
]


@pytest.mark.parametrize("cached, prompt, can_cut, expected", CASES)
def test_the_reuse_decision_table(cached, prompt, can_cut, expected):
    assert plan_reuse(cached, prompt, can_cut=can_cut) == expected


def test_a_recurrent_state_is_never_kept_with_tokens_the_prompt_lacks():
    import itertools

    for cached, prompt in itertools.product(
        [[], [1], [1, 2], [1, 3], [1, 2, 3], [2, 2, 2, 2]], [[1], [1, 2], [1, 2, 3, 4]]
    ):
        reuse = plan_reuse(cached, prompt, can_cut=False)
        assert not reuse.cut
        if not reuse.rebuild:  # what is kept is the whole cache, and all of it prefix
            assert reuse.keep == len(cached) and prompt[: len(cached)] == cached
            assert reuse.keep < len(prompt)


def test_the_starter_model_is_an_attention_model_whose_cache_can_be_cut(engine):
    import llama_cpp

    assert can_cut_back(llama_cpp, engine._llm._model.model)
    assert engine._can_cut


def pays_from_4(tokens_saved: int) -> bool:
    return tokens_saved >= 4


INSTRUCTIONS = [7, 7, 7, 7, 7, 7]
PART_A, PART_B = [*INSTRUCTIONS, 1, 2], [*INSTRUCTIONS, 3, 4]

DONOR_CASES = [
    # prompt, own cache, others (held, still prefilling) -> (donor, wait)
    (PART_B, [], [(PART_A, None)], (0, False)),  # copy the instructions another slot holds
    (PART_B, INSTRUCTIONS, [(PART_A, None)], (None, False)),  # its own cache has them
    (PART_B, [], [([], PART_A)], (None, True)),  # another slot is computing them: wait
    (PART_B, [], [(PART_A[:1], PART_A)], (None, True)),  # ...not yet far enough
    (PART_B, [], [(PART_A, PART_A)], (0, False)),  # computed: copy, though it goes on
    (PART_B, [7, 7], [(PART_A, None)], (0, False)),  # saves 4 more than its own: copy
    (PART_B, [7, 7, 7], [(PART_A, None)], (None, False)),  # saves 3: prefill them
    (PART_B, [], [([9, 9, 9, 9, 9], None), (PART_A, None)], (1, False)),  # the one sharing
    ([5, 5, 5, 5, 5], [], [(PART_A, PART_A)], (None, False)),  # nothing shared: prefill
]


@pytest.mark.parametrize("prompt, own, others, expected", DONOR_CASES)
def test_which_slot_a_prompt_copies_its_prefix_from(prompt, own, others, expected):
    assert choose_donor(prompt, own, others, pays_from_4) == expected
