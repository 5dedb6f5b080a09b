"""The context-window manager: what of a conversation goes into the next prompt.

The prompt is rendered with the model's own chat template and measured in
exact tokens. It always holds the system prompt and the newest user message,
keeps room for the reply, and as many of the most recent whole turns as fit.
When the window overflows, whole turns are evicted in one block down to a
low-water mark, so the prompt's beginning then stays the same for many turns
and llama.cpp keeps reusing its KV cache; the evicted turns are folded into a
running summary (policy `summary`), dropped (`window`), or refused (`off`).
Every eviction, fold or cut is reported as a ContextEvent: nothing is dropped
silently. This module never generates text itself: folding is a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from localllm.chat.conversation import Conversation
from localllm.chat.grounding import grounded_content
from localllm.errors import ContextOverflow

LOW_WATER = 0.5  # after an eviction the prompt fills at most this share of its budget
MIN_PROMPT_BUDGET = 64
CUT_MARKER = (
    "\n\n[… {n} tokens cut from the middle of this message to fit the context window …]\n\n"
)
MEMORY_HEADER = "Summary of the earlier part of this conversation:"


@dataclass(frozen=True)
class ContextEvent:
    kind: str  # "folded" | "dropped" | "cut" | "tools" (described to a template without them)
    turns: int  # whole turns affected (0 for a cut)
    tokens: int  # tokens removed from the prompt
    text: str  # one line for the user

    def as_dict(self) -> dict:
        return {"kind": self.kind, "turns": self.turns, "tokens": self.tokens, "text": self.text}


@dataclass
class PreparedPrompt:
    tokens: list[int]
    budget: int  # the window minus the reply reserve
    events: list[ContextEvent] = field(default_factory=list)


class TokenCounter:
    """Renders message lists with the engine's template and measures them in tokens."""

    def __init__(self, engine, template_vars: dict | None = None):
        self.engine = engine
        self.template_vars = template_vars or {}  # e.g. enable_thinking for --no-think

    def render(self, messages: list[dict]) -> list[int]:
        return self.engine.tokenize(self.engine.render_chat(messages, **self.template_vars))

    def count(self, text: str) -> int:
        return len(self.engine.tokenize(text, special=False, add_bos=False))

    def cut_middle(self, text: str, max_tokens: int) -> tuple[str, int]:
        """Keep the head and tail of text within max_tokens; returns (text, tokens cut)."""
        tokens = self.engine.tokenize(text, special=False, add_bos=False)
        marker_cost = self.count(CUT_MARKER.format(n=len(tokens)))
        keep = max(0, max_tokens - marker_cost)
        if len(tokens) <= max_tokens:
            return text, 0
        head, tail = keep // 2, keep - keep // 2
        cut = len(tokens) - keep
        kept_tail = tokens[len(tokens) - tail :] if tail else []
        text = (
            self.engine.detokenize(tokens[:head])
            + CUT_MARKER.format(n=cut)
            + self.engine.detokenize(kept_tail)
        )
        return text, cut


def system_message(conv: Conversation) -> list[dict]:
    parts = [conv.system_prompt.strip()] if conv.system_prompt.strip() else []
    if conv.memory:
        parts.append(f"{MEMORY_HEADER}\n{conv.memory.strip()}")
    return [{"role": "system", "content": "\n\n".join(parts)}] if parts else []


class ContextManager:
    """Builds each turn's prompt; updates conv.window_start and conv.memory as it evicts."""

    def __init__(self, engine, fold: Callable[[str, list[dict]], str] | None = None,
                 template_vars: dict | None = None):  # fmt: skip
        self.counter = TokenCounter(engine, template_vars)
        self.n_ctx = engine.n_ctx
        self.fold = fold

    def budget(self, conv: Conversation) -> int:
        budget = self.n_ctx - conv.params.max_tokens
        if budget < MIN_PROMPT_BUDGET:
            raise ContextOverflow(
                f"the reply reserve ({conv.params.max_tokens} tokens) leaves no room for a prompt "
                f"in a {self.n_ctx}-token window: lower --max-tokens or raise --ctx"
            )
        return budget

    def _messages(self, conv: Conversation, start: int, cap: int) -> tuple[list[dict], list]:
        """The prompt's messages from `start`; a message over `cap` tokens is cut in the middle."""
        events = []
        out = system_message(conv)
        last = len(conv.messages) - 1
        for i, m in enumerate(conv.messages[start:], start=start):
            content = m.content
            if i == last and m.role == "user" and m.sources:  # passages go with this turn only
                content = grounded_content(m.content, m.sources)
            if self.counter.count(content) > cap:
                content, cut = self.counter.cut_middle(content, cap)
                events.append(
                    ContextEvent("cut", 0, cut, f"a {m.role} message was too long for the "
                                 f"context window: {cut} tokens were cut from its middle")
                )  # fmt: skip
            out.append({"role": m.role, "content": content})
        return out, events

    def prepare(self, conv: Conversation) -> PreparedPrompt:
        """The prompt for answering the last (user) message of conv, evicting as needed."""
        budget = self.budget(conv)
        system_tokens = len(self.counter.render(system_message(conv))) if conv.system_prompt else 0
        # Room for a single message: what is left beside the system prompt and template overhead.
        cap = max(
            16,
            budget - system_tokens - 48 - (self.counter.count(conv.memory) if conv.memory else 0),
        )
        messages, events = self._messages(conv, conv.window_start, cap)
        tokens = self.counter.render(messages)
        if len(tokens) <= budget:
            return PreparedPrompt(tokens, budget, events)
        if conv.params.policy == "off":
            raise ContextOverflow(
                f"this turn is {len(tokens) - budget} tokens over the context window (it needs "
                f"{len(tokens)}, the window leaves {budget} after the reply reserve): start a new "
                "conversation, raise --ctx, or use the summary or window policy"
            )
        return self._evict(conv, budget, cap)

    def _evict(self, conv: Conversation, budget: int, cap: int) -> PreparedPrompt:
        starts = [i for i in conv.turn_starts() if i > conv.window_start]
        last_turn = starts[-1] if starts else conv.window_start
        target = int(budget * LOW_WATER)
        old_start = conv.window_start
        before = len(self.counter.render(self._messages(conv, old_start, cap)[0]))
        new_start = last_turn
        for candidate in starts:  # oldest first: evict as few turns as reach the low-water mark
            if len(self.counter.render(self._messages(conv, candidate, cap)[0])) <= target:
                new_start = candidate
                break
        evicted = conv.messages[old_start:new_start]
        turns = sum(1 for m in evicted if m.role == "user")
        conv.window_start = new_start
        if conv.params.policy == "summary" and self.fold is not None and evicted:
            conv.memory = self.fold(
                conv.memory, [{"role": m.role, "content": m.content} for m in evicted]
            )
            kind, verb = "folded", "folded into the conversation summary"
        else:
            kind, verb = "dropped", "dropped from the context window"
        messages, cut_events = self._messages(conv, new_start, cap)
        tokens = self.counter.render(messages)
        summary = f"{turns} earlier turn(s) {verb} to make room"
        events = [ContextEvent(kind, turns, max(0, before - len(tokens)), summary), *cut_events]
        if len(tokens) > budget and conv.memory:
            # Only the newest turn is left and it still does not fit beside the summary.
            dropped = self.counter.count(conv.memory)
            conv.memory = ""
            tokens = self.counter.render(self._messages(conv, new_start, cap)[0])
            events.append(ContextEvent("dropped", 0, dropped, "the conversation summary was "
                                       "dropped to make room for a long message"))  # fmt: skip
        if len(tokens) > budget:  # should not happen: the cap bounds every message
            raise ContextOverflow(
                f"this message needs {len(tokens)} tokens but the window leaves {budget}: "
                "shorten it or raise --ctx"
            )
        return PreparedPrompt(tokens, budget, events)
