"""One chat turn on a loaded engine: prepare the prompt, stream the answer, store both.

Used by `localllm run --continue` and by the chat UI, so both get the same
context management, history and guardrails. Events flow out as they happen:
ContextNotice (turns folded, a message cut), Token, Retracted (an answer
thrown away by the guardrails), and one TurnDone.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from localllm.chat.context import ContextEvent, ContextManager, TokenCounter
from localllm.chat.conversation import Conversation, Message
from localllm.chat.grounding import citation_filter, cited
from localllm.chat.history import History
from localllm.engine import Finished, GenerationStats, SamplingParams, Token
from localllm.engine.base import EitherFlag, Reasoning
from localllm.engine.reasoning import answer_only, engine_thinking, split_reply
from localllm.errors import LocalLLMError
from localllm.index.citations import CitationCheck

MEMORY_MAX_TOKENS = 160
TITLE_CHARS = 60
WITHHELD = "[answer withheld: it contained a blocked phrase]"
FOLD_INSTRUCTIONS = (
    "You keep a running summary of a conversation between a user and an assistant. "
    "Merge the summary so far with the new exchanges into one short paragraph. Keep names, "
    "numbers, facts, decisions and the user's preferences; write in the conversation's language."
)


@dataclass
class ContextNotice:
    event: ContextEvent


@dataclass
class Retracted:
    reason: str


@dataclass
class Grounded:
    """What the attached documents gave a question: passages, or nothing about it."""

    passages: int
    text: str


@dataclass
class TurnDone:
    message: Message
    stats: GenerationStats
    stopped: bool = False
    withheld: bool = False
    prompt_tokens: int = 0
    events: list[ContextEvent] = field(default_factory=list)
    given: list[dict] | None = None  # the passages of attached documents the question had


@dataclass(frozen=True)
class Guardrails:
    blocked_phrases: tuple[str, ...] = ()
    max_tries: int = 3

    def violation(self, text: str) -> str | None:
        lowered = text.lower()
        return next((p for p in self.blocked_phrases if p.lower() in lowered), None)


class ChatSession:
    def __init__(
        self,
        engine,
        conv: Conversation,
        history: History | None = None,
        guardrails: Guardrails | None = None,
        watermark=None,
        grounder=None,
    ):
        self.engine = engine
        self.grounder = grounder  # chat/grounding.Grounder: attached documents, if any
        self.thinking = engine_thinking(engine)
        template_vars = self.thinking.template_vars(conv.params.think, conv.model)
        self.conv = conv
        self.history = history
        self.guardrails = guardrails or Guardrails()
        self.watermark = watermark  # a WatermarkSpec: every answer carries the green-list bias
        self.context = ContextManager(engine, fold=self._fold, template_vars=template_vars)
        self._fold_cache: dict[str, str] = {}

    # -- turns ------------------------------------------------------------------

    def send(self, text: str, cancel: threading.Event | None = None) -> Iterator:
        """Add a user message and stream the answer; the message is stored once it fits.

        Roles always alternate, as templates such as Gemma 3's and Mistral's require. A
        question the model failed on is taken back (the caller gives it back to the user);
        one whose answer was interrupted (Ctrl+C, the caller stopped listening, a process
        killed mid-answer) is kept, followed by an empty answer marked "interrupted". A
        stopped answer is kept as far as it came, marked "stopped".
        """
        self.close_unanswered()
        message = Message("user", text, tokens=self.context.counter.count(text))
        if self.grounder is not None:
            yield self._ground(message)
        self.conv.messages.append(message)
        try:
            prepared = self.context.prepare(self.conv)
        except LocalLLMError:
            self.conv.messages.pop()  # refused (policy `off`): nothing is stored
            raise
        if not self.conv.title:
            self.conv.title = " ".join(text.split())[:TITLE_CHARS]
        if self.history is not None:
            if self.conv.id is None:
                self.history.create(self.conv)  # stores the new message with it
            else:
                self.history.add_message(self.conv, message)
        try:
            yield from self._answer(cancel, prepared)
        except LocalLLMError:
            self.drop_unanswered()
            raise
        except BaseException:  # KeyboardInterrupt, GeneratorExit: nothing typed is lost
            self.close_unanswered()
            raise

    def _ground(self, message: Message) -> Grounded:
        g = self.grounder
        message.sources = g.passages_for(message.content, self.context.counter.count,
                                         self.context.budget(self.conv))  # fmt: skip
        if message.sources is None:
            return Grounded(0, f"no passage of {g.label} is about this: answered without them")
        return Grounded(len(message.sources), f"{len(message.sources)} passages from {g.label}")

    def regenerate(self, cancel: threading.Event | None = None) -> Iterator:
        """Replace the last answer with a new one."""
        if self.conv.messages and self.conv.messages[-1].role == "assistant":
            self._drop_last()
        yield from self._answer(cancel)

    def edit_last(self, text: str, cancel: threading.Event | None = None) -> Iterator:
        """Replace the last question (and its answer) and ask again."""
        while self.conv.messages and self.conv.messages[-1].role == "assistant":
            self._drop_last()
        if self.conv.messages and self.conv.messages[-1].role == "user":
            self._drop_last()
        yield from self.send(text, cancel)

    def drop_unanswered(self) -> None:
        """Take back the last message if it is a question without an answer."""
        if self.conv.messages and self.conv.messages[-1].role == "user":
            self._drop_last()

    def close_unanswered(self) -> None:
        """Follow a question left without an answer by an empty one marked "interrupted"."""
        if self.conv.messages and self.conv.messages[-1].role == "user":
            answer = Message("assistant", "", note="interrupted")
            self.conv.messages.append(answer)
            if self.history is not None and self.conv.id is not None:
                self.history.add_message(self.conv, answer)

    def _drop_last(self) -> None:
        if self.history is not None:
            self.history.delete_last_message(self.conv)
        else:
            self.conv.messages.pop()

    def _answer(self, cancel, prepared=None) -> Iterator:
        prepared = prepared or self.context.prepare(self.conv)
        for event in prepared.events:
            yield ContextNotice(event)
        if self.history is not None and prepared.events:
            self.history.save_state(self.conv)
        params = self.conv.params
        done = None
        question = self.conv.messages[-1] if self.conv.messages else None
        given = question.sources if question is not None and question.role == "user" else None
        for attempt in range(max(1, self.guardrails.max_tries)):
            # A retry must be able to differ: fresh seed, and some temperature if it was greedy.
            seed = params.seed if attempt == 0 or params.seed is None else params.seed + attempt
            temperature = params.temperature if attempt == 0 else max(params.temperature, 0.8)
            sampling = SamplingParams(max_tokens=params.max_tokens, temperature=temperature,
                                      seed=seed, watermark=self.watermark)  # fmt: skip
            shown = citation_filter(given) if given else None
            text, done, blocked, reasoning = yield from self._stream(prepared.tokens, sampling,
                                                                     cancel, shown)  # fmt: skip
            if blocked is None:
                break
            yield Retracted(f"the answer contained a blocked phrase ({blocked!r}); trying again")
        withheld = blocked is not None
        stats = done.stats
        if reasoning:  # counted apart, as llama-server's reasoning_tokens
            stats.reasoning_tokens = self.context.counter.count(reasoning)
        sources = None
        if given and not withheld:  # citations of passages it was not given are removed
            check = CitationCheck(len(given))
            text, sources = check.clean(text), cited(check, given)
        answer = Message(
            "assistant",
            WITHHELD if withheld else text.strip(),  # surrounding blank lines carry nothing
            tokens=stats.completion_tokens,
            completion_tokens=stats.completion_tokens,
            ttft_s=round(stats.ttft_s, 4),
            decode_tps=round(stats.decode_tps, 2),
            note="withheld" if withheld else ("stopped" if done.stopped else None),
            sources=sources,
            reasoning=None if withheld else (reasoning.strip() or None),
        )
        self.conv.messages.append(answer)
        if self.history is not None:
            self.history.add_message(self.conv, answer)
        yield TurnDone(answer, stats, done.stopped, withheld, len(prepared.tokens), prepared.events,
                       given)  # fmt: skip

    def _stream(self, tokens, sampling, cancel, shown=None):
        """Stream one attempt; stops early when a blocked phrase appears. shown, a
        CitationFilter, cleans what is streamed of citations to passages not given."""
        text = reasoning = ""
        guard = self.guardrails.blocked_phrases
        inner_cancel = threading.Event()
        watch = cancel if cancel is not None else inner_cancel
        done = None
        blocked = None
        events = self.engine.stream(tokens, sampling, EitherFlag(watch, inner_cancel))
        for event in split_reply(events, self.engine, tokens, self.thinking):
            if isinstance(event, Finished):
                done = event
            elif isinstance(event, Reasoning):  # shown apart, stored apart, never fed back
                reasoning += event.text
                if not blocked:
                    yield event
            else:
                text += event.text
                if guard and (blocked := self.guardrails.violation(text)):
                    inner_cancel.set()
                    continue
                if not blocked:
                    piece = shown.feed(event.text) if shown else event.text
                    if piece:
                        yield Token(piece)
        if shown and not blocked and (rest := shown.finish()):
            yield Token(rest)
        if blocked:
            done.stopped = False
        return text, done, blocked, reasoning

    # -- memory -----------------------------------------------------------------

    def _fold(self, memory: str, evicted: list[dict]) -> str:
        """Summarize the evicted turns together with the summary so far (a short side call)."""
        key = hashlib.sha256(repr((memory, evicted)).encode()).hexdigest()
        if key not in self._fold_cache:
            self._fold_cache[key] = fold_turns(self.engine, memory, evicted)
        return self._fold_cache[key]


def fold_turns(engine, memory: str, evicted: list[dict]) -> str:
    """The running summary with the evicted turns folded in: one short, greedy side call."""
    transcript = "\n".join(f"{m['role'].title()}: {m['content']}" for m in evicted)
    counter = TokenCounter(engine)
    room = engine.n_ctx - MEMORY_MAX_TOKENS - 160 - counter.count(FOLD_INSTRUCTIONS)
    room -= counter.count(memory) if memory else 0
    transcript, _ = counter.cut_middle(transcript, max(64, room))
    request = (
        f"Summary so far:\n{memory}\n\n" if memory else ""
    ) + f"New exchanges:\n{transcript}\n\nUpdated summary:"
    thinking = engine_thinking(engine)
    messages = [{"role": "system", "content": FOLD_INSTRUCTIONS},
                {"role": "user", "content": request}]  # fmt: skip
    prompt = engine.tokenize(engine.render_chat(messages, **answer_only(thinking)))
    params = SamplingParams(max_tokens=MEMORY_MAX_TOKENS, temperature=0.0, seed=0)
    events = split_reply(engine.stream(prompt, params), engine, prompt, thinking)
    summary = "".join(e.text for e in events if isinstance(e, Token)).strip()  # no reasoning
    return summary or memory  # a model that says nothing must not erase the memory


def guardrails_from_config(config: dict) -> Guardrails:
    """[guardrails] blocked_phrases = [...], max_tries = N from a validated config; off when
    absent."""
    section = config.get("guardrails", {})
    phrases = section.get("blocked_phrases", [])
    return Guardrails(tuple(p for p in phrases if p.strip()), int(section.get("max_tries", 3)))
