"""Messages that flow up from generation workers to the chat screen."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class AnswerChunk(Message):
    text: str


@dataclass
class AnswerRetracted(Message):
    reason: str


@dataclass
class AnswerFinished(Message):
    done: object  # chat.session.TurnDone


@dataclass
class ContextNoticed(Message):
    text: str


@dataclass
class ReasoningChunk(Message):
    text: str


@dataclass
class GenerationFailed(Message):
    error: str


@dataclass
class ModelReady(Message):
    name: str
    engine: object


@dataclass
class ModelFailed(Message):
    error: str
