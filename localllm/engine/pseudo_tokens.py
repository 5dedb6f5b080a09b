"""A stand-in tokenizer for engines that cannot count tokens for us (Ollama, LM Studio).

Context fitting and chunking work on token lists: counting, slicing, turning a
slice back into text. An engine without a tokenize endpoint still needs all
three, so this one cuts text into short pieces (at most three letters, every
digit, every punctuation mark and every non-Latin character on its own), which
real tokenizers rarely cut finer: counts err on the high side, as a window
must. Each piece gets an id from a table that grows as text is seen, so any
slice of ids turns back into exactly its text.
"""

from __future__ import annotations

import json
import re
import threading

# A chat, for engines without a template route: its messages travel inside the "prompt" as
# text (so they count, slice and cache like any prompt) and go out as chat messages.
CHAT_MARK = "\x00localllm-chat\x00"
_MESSAGE, _BODY, _ALLOWANCE = "\x01", "\x02", "\x04"
_FRAMING = re.compile("[\x00-\x04]")
# Pieces counted for what the server's template adds: role markers, a default system prompt.
CHAT_ALLOWANCE = 24
MESSAGE_ALLOWANCE = 6

# Latin letters three at a time; anything else one character at a time. Whitespace sticks
# to the piece that follows it, as in most BPE vocabularies.
_PIECE = re.compile(r"\s*(?:[A-Za-z\u00c0-\u024f]{1,3}|\S)|\s+")


class PseudoTokenizer:
    def __init__(self):
        self._ids: dict[str, int] = {}
        self._pieces: list[str] = []
        self._lock = threading.Lock()  # the summarizer's fan-out tokenizes from many threads

    def tokenize(self, text: str) -> list[int]:
        pieces = _PIECE.findall(text)
        with self._lock:
            out = []
            for piece in pieces:
                token = self._ids.get(piece)
                if token is None:
                    token = self._ids[piece] = len(self._pieces)
                    self._pieces.append(piece)
                out.append(token)
            return out

    def detokenize(self, tokens: list[int]) -> str:
        pieces = self._pieces
        return "".join(pieces[t] for t in tokens if 0 <= t < len(pieces))


def pack_chat(messages: list[dict], template_vars: dict) -> str:
    """The chat as prompt text that counts like its contents plus the template's allowance.

    Plain messages are framed with control characters, so a quote or a newline counts
    once, as it would in the template; anything else (tool calls, content parts,
    template variables) goes as JSON, whose escapes only make the count higher."""
    plain = not template_vars and all(
        set(m) <= {"role", "content"} and isinstance(m.get("content"), str)
        and isinstance(m.get("role"), str) and not _FRAMING.search(m["role"] + m["content"])
        for m in messages
    )  # fmt: skip
    if not plain:
        return CHAT_MARK + json.dumps({"messages": messages, **template_vars}, ensure_ascii=False)
    framed = "".join(f"{_MESSAGE}{m['role']}{_BODY}{m['content']}{_ALLOWANCE * MESSAGE_ALLOWANCE}"
                     for m in messages)  # fmt: skip
    return CHAT_MARK + _ALLOWANCE * CHAT_ALLOWANCE + framed


def unpack_chat(text: str) -> dict:
    """pack_chat's text back into the request fields it stands for."""
    body = text[len(CHAT_MARK) :]
    if body.startswith("{"):
        return json.loads(body)
    messages = []
    for framed in body.replace(_ALLOWANCE, "").split(_MESSAGE)[1:]:
        role, content = framed.split(_BODY, 1)
        messages.append({"role": role, "content": content})
    return {"messages": messages}
