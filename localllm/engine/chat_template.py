"""Render a model's own chat template (tokenizer.chat_template) safely.

Templates come from model files, so they run in Jinja's immutable sandbox:
they can format messages but cannot touch Python objects or the file system.
The variables and helpers match what Hugging Face's transformers provides,
which is what template authors write against.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from localllm.errors import ChatTemplateError


class _TemplateRaised(Exception):
    """A template called raise_exception(), e.g. 'roles must alternate'."""


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


def _tojson(value: Any, indent: int | None = None, separators=None, sort_keys=False) -> str:
    # transformers' tojson: unlike Jinja's built-in, no HTML escaping.
    return json.dumps(
        value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=8)
def _compile(source: str):
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise ChatTemplateError(f"the model's chat template does not compile: {exc}") from None


def _fold_system_into_first_user(messages: list[dict]) -> list[dict]:
    """For templates that reject a system role: prepend it to the first user turn."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}" if system else m["content"]
            break
    return rest


def render_chat(
    source: str | None,
    messages: list[dict],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Format messages with the template; raises ChatTemplateError with the reason."""
    if not source:
        raise ChatTemplateError(
            "this model has no chat template (it is probably a base model): "
            "use an instruct/chat model, or `localllm run --raw` for plain completion"
        )
    from jinja2 import TemplateError

    template = _compile(source)

    def attempt(msgs: list[dict]) -> str:
        return template.render(
            messages=msgs,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
        )

    try:
        return attempt(messages)
    except _TemplateRaised as exc:
        if any(m["role"] == "system" for m in messages):
            try:
                return attempt(_fold_system_into_first_user(messages))
            except (_TemplateRaised, TemplateError):
                pass
        raise ChatTemplateError(
            f"the model's chat template refused these messages: {exc}"
        ) from None
    except TemplateError as exc:
        raise ChatTemplateError(f"the model's chat template failed: {exc}") from None
