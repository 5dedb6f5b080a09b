"""Thinking models: where their reasoning is in the text, and how to turn it off.

Qwen3, Qwen3.5, SmolLM3, Phi-4-mini-reasoning and the R1 distills write their reasoning
between <think> and </think> before the answer; gpt-oss writes it on its "analysis"
channel and the answer on "final" (OpenAI's harmony format). Which format a model uses,
and whether its template has a switch, is read from its chat template against the table
below (data, not string checks scattered through the code); ReasoningSplitter then
separates a streamed reply into reasoning and answer as it comes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from localllm.engine.base import Reasoning, Token
from localllm.errors import RequestError


@dataclass(frozen=True)
class ReasoningFormat:
    name: str
    signature: str  # what in a chat template shows this format
    opens: str  # where reasoning starts in the reply
    closes: str  # where it ends (the answer follows)
    control_markers: bool = False  # the markers are control tokens: stream them as text


FORMATS = (
    ReasoningFormat(
        "harmony",
        "<|channel|>",
        "<|channel|>analysis<|message|>",
        "<|end|>",
        control_markers=True,
    ),
    ReasoningFormat("think-tags", "<think>", "<think>", "</think>"),
)
SWITCH = "enable_thinking"  # the template variable Qwen3, Qwen3.5 and SmolLM3 read


@dataclass(frozen=True)
class Thinking:
    """What a model's template says about its reasoning."""

    format: ReasoningFormat | None  # None: the model does not reason in a known format
    switchable: bool  # the template reads enable_thinking

    def template_vars(self, think: bool | None, model: str) -> dict:
        """The template variables for --think / --no-think (None: the model's default)."""
        if think is None:
            return {}
        if not self.switchable:
            raise RequestError(
                f"{model} has no thinking switch in its chat template: drop "
                f"--{'think' if think else 'no-think'}"
                + (" (it always reasons; its reasoning is kept apart from the answer)"
                   if self.format else "")
            )  # fmt: skip
        return {SWITCH: think}


def thinking_of(chat_template: str | None) -> Thinking:
    template = chat_template or ""
    found = next((f for f in FORMATS if f.signature in template), None)
    return Thinking(found, SWITCH in template)


class ReasoningSplitter:
    """Separates streamed text into reasoning and answer. A marker split across pieces is
    held back until it is whole; text before any marker is answer unless the prompt left
    the model inside its reasoning (a template that opens <think> itself)."""

    def __init__(self, fmt: ReasoningFormat, inside: bool = False):
        self.format = fmt
        self.inside = inside
        self._held = ""

    def feed(self, text: str) -> Iterator[Token | Reasoning]:
        self._held += text
        while True:
            marker = self.format.closes if self.inside else self.format.opens
            at = self._held.find(marker)
            if at < 0:
                break
            yield from self._emit(self._held[:at])
            self._held = self._held[at + len(marker) :]
            self.inside = not self.inside
        keep = _partial_suffix(self._held, self._markers())
        ready, self._held = (
            self._held[: len(self._held) - keep],
            self._held[len(self._held) - keep :],
        )
        yield from self._emit(ready)

    def finish(self) -> Iterator[Token | Reasoning]:
        rest, self._held = self._held, ""
        yield from self._emit(rest)

    def _markers(self) -> tuple[str, ...]:
        return (self.format.opens, self.format.closes)

    def _emit(self, text: str) -> Iterator[Token | Reasoning]:
        if not text:
            return
        if self.inside:
            yield Reasoning(text)
        else:
            yield Token(text)


class HarmonySplitter:
    """gpt-oss's harmony format: each message is `<|channel|>NAME<|message|>BODY` up to
    <|end|>, <|return|> or <|call|>; the analysis and commentary channels are reasoning, the
    final channel is the answer, and the headers between messages are dropped."""

    HEADER, BODY_ENDS = "<|channel|>", ("<|end|>", "<|return|>", "<|call|>", "<|start|>")
    MARKERS = ("<|channel|>", "<|message|>", *BODY_ENDS)

    def __init__(self, fmt: ReasoningFormat, inside: bool = False):
        self.format = fmt
        self.channel: str | None = "analysis" if inside else "final"  # before any header
        self._in_header = False  # after <|channel|>, before <|message|>
        self._held = ""

    def feed(self, text: str) -> Iterator[Token | Reasoning]:
        self._held += text
        while self._held:
            if self._in_header:  # reading NAME [to=... <|constrain|>...] up to <|message|>
                at = self._held.find("<|message|>")
                if at < 0:
                    return
                name = self._held[:at].split()
                self.channel = name[0].split("<|")[0] if name else "final"
                self._held, self._in_header = self._held[at + len("<|message|>") :], False
                continue
            at, marker = _first(self._held, self.MARKERS)
            if at < 0:
                cut = len(self._held) - _partial_suffix(self._held, self.MARKERS)
                yield from self._emit(self._held[:cut])
                self._held = self._held[cut:]
                return
            yield from self._emit(self._held[:at])
            self._held = self._held[at + len(marker) :]
            if marker == self.HEADER:
                self._in_header = True
            else:
                self.channel = None  # between messages: headers and roles, not shown

    def finish(self) -> Iterator[Token | Reasoning]:
        rest, self._held = self._held, ""
        if not self._in_header:
            yield from self._emit(rest)

    def _emit(self, text: str) -> Iterator[Token | Reasoning]:
        if not text or self.channel is None:
            return
        if self.channel == "final":
            yield Token(text)
        else:
            yield Reasoning(text)


def _first(text: str, markers: tuple[str, ...]) -> tuple[int, str]:
    found = [(text.find(m), m) for m in markers if m in text]
    return min(found) if found else (-1, "")


def splitter_for(fmt: ReasoningFormat, inside: bool = False):
    return HarmonySplitter(fmt, inside) if fmt.name == "harmony" else ReasoningSplitter(fmt, inside)


def _partial_suffix(text: str, markers: tuple[str, ...]) -> int:
    """The length of the longest end of text that a marker starts with."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if marker.startswith(text[-n:]):
                best = n
                break
    return best


def opens_inside(prompt_text: str, fmt: ReasoningFormat) -> bool:
    """Whether the rendered prompt leaves the model inside its reasoning."""
    return prompt_text.rstrip().endswith(fmt.opens)


def split_reasoning(events, thinking: Thinking, prompt_tail: str = ""):
    """A stream's events with its text separated into Reasoning and Token; prompt_tail (the
    prompt's last text) tells whether the template opened the reasoning itself. Events of a
    model without a known format pass through as they are."""
    from localllm.engine.base import Finished

    if thinking.format is None:
        yield from events
        return
    splitter = splitter_for(thinking.format, opens_inside(prompt_tail, thinking.format))
    for event in events:
        if isinstance(event, Token):
            yield from splitter.feed(event.text)
            continue
        if isinstance(event, Finished):
            yield from splitter.finish()
        yield event


PROMPT_TAIL = 16  # prompt tokens read back to see whether the template opened the reasoning


def starts_inside(engine, prompt_tokens: list[int], fmt: ReasoningFormat) -> bool:
    """Whether the reply to prompt_tokens begins inside the reasoning."""
    return opens_inside(engine.detokenize(prompt_tokens[-PROMPT_TAIL:]), fmt)


def split_reply(events, engine, prompt_tokens: list[int], thinking: Thinking | None = None):
    """split_reasoning for engine's reply to prompt_tokens (thinking: the engine's own)."""
    thinking = thinking or engine_thinking(engine)
    if thinking.format is None:
        yield from events
        return
    tail = engine.detokenize(prompt_tokens[-PROMPT_TAIL:])
    yield from split_reasoning(events, thinking, tail)


def answer_only(thinking: Thinking) -> dict:
    """The template variables that turn reasoning off, for jobs that want only the answer
    (summaries, translations, extraction): none when the template has no switch."""
    return {SWITCH: False} if thinking.switchable else {}


def engine_thinking(engine) -> Thinking:
    """Any engine's Thinking: its own, or read from its chat template."""
    found = getattr(engine, "thinking", None)
    if isinstance(found, Thinking):
        return found
    return thinking_of(getattr(getattr(engine, "info", None), "chat_template", None))
