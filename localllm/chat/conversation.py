"""A conversation as data: system prompt, messages, model, sampling, and the folded memory.

Plain dataclasses with no I/O; history.py stores them and context.py decides
what of them goes into the next prompt.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

POLICIES = ("summary", "window", "off")


@dataclass
class Message:
    role: str  # "user" | "assistant"
    content: str
    tokens: int | None = None  # the message's own tokens as rendered (approximate share)
    completion_tokens: int | None = None
    ttft_s: float | None = None
    decode_tps: float | None = None
    created_at: float = field(default_factory=time.time)
    note: str | None = None  # e.g. "stopped" for an answer cut short by the user
    # Passages from attached documents: for a question, those given to the model with it
    # (numbered from 1); for an answer, those it cited. Each: number, path, page, start,
    # end, text.
    sources: list[dict] | None = None
    reasoning: str | None = None  # a thinking model's reasoning: kept, never sent back
    id: int | None = None  # history row id once stored

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("id")
        return data


@dataclass
class ChatParams:
    temperature: float = 0.7
    max_tokens: int = 512  # the reply reserve: room kept free for the answer
    seed: int | None = None
    policy: str = "summary"  # what to do with turns that no longer fit: summary | window | off
    think: bool | None = None  # thinking models: reason first (True), not (False), default

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown context policy {self.policy!r}: use one of {POLICIES}")


@dataclass
class Conversation:
    model: str
    system_prompt: str = ""
    params: ChatParams = field(default_factory=ChatParams)
    messages: list[Message] = field(default_factory=list)
    title: str = ""
    memory: str = ""  # running summary of the turns folded out of the window
    window_start: int = 0  # index of the first message still sent verbatim
    attached: str = ""  # documents answers draw on: an index name, or paths one per line
    id: int | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    def chat_messages(self, start: int | None = None) -> list[dict]:
        """Messages from `start` (default: the window start) as role/content dicts."""
        begin = self.window_start if start is None else start
        return [{"role": m.role, "content": m.content} for m in self.messages[begin:]]

    def turn_starts(self) -> list[int]:
        """Indexes of messages that begin a turn (a user message)."""
        return [i for i, m in enumerate(self.messages) if m.role == "user"]


def source_label(passage: dict) -> str:
    """file:page, as a list of sources shows a passage of attached documents."""
    page = passage.get("page")
    return passage["path"] if page is None else f"{passage['path']}:{page}"
