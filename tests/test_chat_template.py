import pytest

from localllm.engine.chat_template import render_chat
from localllm.errors import ChatTemplateError

SIMPLE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
)


def test_renders_messages_and_generation_prompt():
    out = render_chat(SIMPLE, [{"role": "user", "content": "hi"}])
    assert out == "<user>hi</s><assistant>"


def test_missing_template_says_what_to_do():
    with pytest.raises(ChatTemplateError, match="--raw"):
        render_chat(None, [{"role": "user", "content": "hi"}])


def test_system_prompt_is_folded_when_the_template_rejects_it():
    out = render_chat(
        NO_SYSTEM, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    )
    assert out == "[user]Be brief.\n\nhi"


def test_template_cannot_reach_python_internals():
    evil = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(ChatTemplateError):
        render_chat(evil, [{"role": "user", "content": "hi"}])


def test_template_syntax_error_is_reported():
    with pytest.raises(ChatTemplateError, match="does not compile"):
        render_chat("{% for %}", [{"role": "user", "content": "hi"}])


def test_tojson_does_not_escape_html():
    out = render_chat(
        "{{ messages[0]['content'] | tojson }}", [{"role": "user", "content": "<b>ñ"}]
    )
    assert out == '"<b>ñ"'


def test_loop_controls_work_as_in_transformers():
    template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}{% break %}{% endif %}"
        "{{ m['content'] }};{% endfor %}"
    )
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"}]  # fmt: skip
    assert render_chat(template, messages, add_generation_prompt=False) == "a;"


@pytest.mark.parametrize(
    "template",
    ["{{ 1/0 }}", "{{ messages[5]['content'] + 1 }}", "{{ [] + 1 }}"],
)
def test_a_template_that_fails_is_a_chat_template_error(template):
    with pytest.raises(ChatTemplateError, match="chat template failed"):
        render_chat(template, [{"role": "user", "content": "hi"}])


@pytest.mark.timeout(60)  # unbounded, this loop would run for hours
def test_a_runaway_template_is_stopped():
    runaway = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
    with pytest.raises(ChatTemplateError, match="was stopped"):
        render_chat(runaway, [{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("template", ["{{ 'x' * 10**9 }}", "{{ 2 ** 100000 }}"])
def test_a_template_that_builds_something_huge_is_stopped(template):
    with pytest.raises(ChatTemplateError, match="was stopped"):
        render_chat(template, [{"role": "user", "content": "hi"}])


def test_the_render_bound_leaves_tracing_as_it_was():
    import sys

    before = sys.gettrace()
    render_chat(SIMPLE, [{"role": "user", "content": "hi"}])
    assert sys.gettrace() is before
