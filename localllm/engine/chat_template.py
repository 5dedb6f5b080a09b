"""Render a model's own chat template (tokenizer.chat_template) safely.

Templates come from model files, so they run in Jinja's immutable sandbox:
they can format messages but cannot touch Python objects or the file system,
and they are bounded: a render that runs longer than RENDER_SECONDS or builds
a string or list beyond MAX_ITEMS is stopped. Any failure inside a template is
a ChatTemplateError, never a crash. The variables, helpers and extensions
(loop controls) match what Hugging Face's transformers provides, which is what
template authors write against.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from functools import lru_cache
from typing import Any

from localllm.errors import ChatTemplateError

RENDER_SECONDS = 2.0  # a real template renders in milliseconds
MAX_ITEMS = 10_000_000  # characters or elements one `*` or `**` may produce


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


class _TooCostly(Exception):
    """A render that ran too long or built something too large."""


def _bounded_binop(a: Any, b: Any, op: str) -> Any:
    if op == "**" and isinstance(b, (int, float)) and abs(b) > 1024:
        raise _TooCostly(f"an exponent of {b}")
    if op == "*":
        for seq, count in ((a, b), (b, a)):
            sized = isinstance(seq, (str, list, tuple)) and isinstance(count, int)
            if sized and len(seq) * count > MAX_ITEMS:
                raise _TooCostly(f"a sequence of {len(seq) * count} items")
    return {"*": lambda: a * b, "**": lambda: a**b}[op]()


def _environment():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context, operator, left, right):
            if operator in self.intercepted_binops:
                return _bounded_binop(left, right, operator)
            return super().call_binop(context, operator, left, right)

    return BoundedSandbox(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )


class _Deadline:
    """Stops template code (and only it) once RENDER_SECONDS have passed.

    Jinja compiles a template to Python code named "<template>"; a trace function on
    those frames checks the clock on every line, so a runaway loop is stopped there.
    """

    def __init__(self, seconds: float):
        self.until = time.monotonic() + seconds

    def _line(self, frame, event, arg):
        if time.monotonic() > self.until:
            raise _TooCostly(f"more than {RENDER_SECONDS:g} s")
        return self._line

    def _call(self, frame, event, arg):
        return self._line if frame.f_code.co_filename == "<template>" else None

    def __enter__(self):
        self.previous = sys.gettrace()
        sys.settrace(self._call)
        return self

    def __exit__(self, *exc):
        sys.settrace(self.previous)
        return False


@lru_cache(maxsize=8)
def _compile(source: str):
    from jinja2 import TemplateError

    env = _environment()
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
    **template_vars: Any,
) -> str:
    """Format messages with the template; raises ChatTemplateError with the reason.

    template_vars (tools, documents, enable_thinking, ...) reach the template as-is;
    None values are left out, as transformers does."""
    if not source:
        raise ChatTemplateError(
            "this model has no chat template (it is probably a base model): "
            "use an instruct/chat model, or `localllm run --raw` for plain completion"
        )
    from jinja2 import TemplateError

    template = _compile(source)

    def attempt(msgs: list[dict]) -> str:
        with _Deadline(RENDER_SECONDS):
            return template.render(
                messages=msgs,
                add_generation_prompt=add_generation_prompt,
                bos_token=bos_token,
                eos_token=eos_token,
                **{k: v for k, v in template_vars.items() if v is not None},
            )

    try:
        return attempt(messages)
    except _TemplateRaised as exc:
        if any(m["role"] == "system" for m in messages):
            try:
                return attempt(_fold_system_into_first_user(messages))
            except (_TemplateRaised, TemplateError, _TooCostly):
                pass
        raise ChatTemplateError(
            f"the model's chat template refused these messages: {exc}"
        ) from None
    except _TooCostly as exc:
        raise ChatTemplateError(
            f"the model's chat template was stopped: it asked for {exc}"
        ) from None
    except TemplateError as exc:
        raise ChatTemplateError(f"the model's chat template failed: {exc}") from None
    except Exception as exc:  # a template is data: 1/0, bad indexing, ... are its faults
        raise ChatTemplateError(
            f"the model's chat template failed: {type(exc).__name__}: {exc}"
        ) from None
