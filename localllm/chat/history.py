"""Conversation history in sqlite: one file in the data folder, WAL mode.

Each message is committed as soon as it exists (the user's when sent, the
answer when complete), so a process killed mid-answer loses at most that
answer, and WAL keeps the file consistent for the next open. Two writers on
one conversation (two `run -c` at once, two chat windows) both keep their
turns: a message's position is taken inside its own write transaction. The
schema carries its version (PRAGMA user_version) and moves forward through
MIGRATIONS. Exports are Markdown (for people) and JSON (round-trips through
import, all or nothing).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path

from localllm.chat.conversation import ChatParams, Conversation, Message, source_label
from localllm.errors import ConversationNotFound, LocalLLMError

MIGRATIONS: list = []


def migration(step):
    MIGRATIONS.append(step)
    return step


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    # IF NOT EXISTS: databases written before migrations existed already hold this schema.
    for statement in INITIAL_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


@migration
def m002_sources(db: sqlite3.Connection) -> None:
    # The passages of attached documents a question was given and its answer cited (JSON),
    # and what a conversation has attached.
    db.execute("ALTER TABLE messages ADD COLUMN sources TEXT")
    db.execute("ALTER TABLE conversations ADD COLUMN attached TEXT NOT NULL DEFAULT ''")


@migration
def m003_reasoning(db: sqlite3.Connection) -> None:
    # A thinking model's reasoning, kept apart from the answer it preceded.
    db.execute("ALTER TABLE messages ADD COLUMN reasoning TEXT")


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply the steps this database has not had yet, each in its own transaction."""
    done = db.execute("PRAGMA user_version").fetchone()[0]
    if done > len(MIGRATIONS):
        raise LocalLLMError(
            f"{path} was written by a newer localllm (schema {done}, this one knows "
            f"{len(MIGRATIONS)}): upgrade localllm to read it"
        )
    for number, step in enumerate(MIGRATIONS[done:], start=done + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


INITIAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}',
    memory TEXT NOT NULL DEFAULT '',
    window_start INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    tokens INTEGER,
    completion_tokens INTEGER,
    ttft_s REAL,
    decode_tps REAL,
    note TEXT,
    created_at REAL NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, seq)
"""
ROLES = ("system", "user", "assistant")
EXPORT_FORMAT = "localllm-conversation/1"
_MESSAGE_FIELDS = ("role", "content", "tokens", "completion_tokens", "ttft_s", "decode_tps",
                   "note", "created_at", "sources", "reasoning")  # fmt: skip
_JSON_FIELDS = frozenset({"sources"})  # stored as JSON text


def _stored(message: Message, name: str):
    value = getattr(message, name)
    return (
        json.dumps(value, ensure_ascii=False)
        if name in _JSON_FIELDS and value is not None
        else value
    )


def _loaded(row, name: str):
    value = row[name]
    return json.loads(value) if name in _JSON_FIELDS and value is not None else value


def _locked(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper


class History:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # The chat app writes from its generation worker and reads from the UI thread:
        # one connection shared across threads, every use under one lock.
        self.db = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )  # autocommit
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        migrate(self.db, path)

    @contextlib.contextmanager
    def _transaction(self):
        """One write transaction; IMMEDIATE takes the write lock first, so two processes
        queue (up to the 30 s timeout) instead of failing halfway."""
        if self.db.in_transaction:  # nested: the outer one commits
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @_locked
    def close(self) -> None:
        self.db.close()

    # -- conversations -----------------------------------------------------------

    @_locked
    def create(self, conv: Conversation) -> Conversation:
        """Store a new conversation with its messages: all of it, or nothing."""
        with self._transaction():
            return self._create(conv)

    def _create(self, conv: Conversation) -> Conversation:
        now = time.time()
        cur = self.db.execute(
            "INSERT INTO conversations (title, model, system_prompt, params, memory, window_start,"
            " attached, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (conv.title, conv.model, conv.system_prompt, json.dumps(asdict(conv.params)),
             conv.memory, conv.window_start, conv.attached, conv.created_at or now,
             conv.updated_at or now),
        )  # fmt: skip
        conv.id = cur.lastrowid
        for seq, message in enumerate(conv.messages):
            self._insert_message(conv.id, seq, message)
        return conv

    @_locked
    def save_state(self, conv: Conversation) -> None:
        """Persist what changes between turns: memory, window, title, model, parameters."""
        conv.updated_at = time.time()
        self.db.execute(
            "UPDATE conversations SET title=?, model=?, system_prompt=?, params=?, memory=?,"
            " window_start=?, attached=?, updated_at=? WHERE id=?",
            (conv.title, conv.model, conv.system_prompt, json.dumps(asdict(conv.params)),
             conv.memory, conv.window_start, conv.attached, conv.updated_at, conv.id),
        )  # fmt: skip

    @_locked
    def add_message(self, conv: Conversation, message: Message, *, touch: bool = True) -> None:
        """Append a message after whatever the conversation holds now, even if another
        process added turns since this one was read."""
        with self._transaction():
            (seq,) = self.db.execute(
                "SELECT COALESCE(MAX(seq), -1) + 1 FROM messages WHERE conversation_id=?",
                (conv.id,),
            ).fetchone()
            self._insert_message(conv.id, seq, message)
            if touch:
                self.save_state(conv)

    def _insert_message(self, conversation_id: int, seq: int, message: Message) -> None:
        cur = self.db.execute(
            f"INSERT INTO messages (conversation_id, seq, {', '.join(_MESSAGE_FIELDS)})"
            f" VALUES (?, ?, {', '.join('?' * len(_MESSAGE_FIELDS))})",
            (conversation_id, seq, *(_stored(message, f) for f in _MESSAGE_FIELDS)),
        )
        message.id = cur.lastrowid

    @_locked
    def delete_last_message(self, conv: Conversation) -> None:
        """Drop the newest message (to regenerate an answer or edit the last question)."""
        message = conv.messages.pop()
        if message.id is not None:
            self.db.execute("DELETE FROM messages WHERE id=?", (message.id,))
        conv.window_start = min(conv.window_start, len(conv.messages))
        self.save_state(conv)

    @_locked
    def get(self, conversation_id: int) -> Conversation:
        row = self.db.execute(
            "SELECT * FROM conversations WHERE id=?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise ConversationNotFound(
                f"no conversation {conversation_id}: see `localllm history list`"
            )
        messages = [
            Message(id=m["id"], **{f: _loaded(m, f) for f in _MESSAGE_FIELDS})
            for m in self.db.execute(
                "SELECT * FROM messages WHERE conversation_id=? ORDER BY seq", (conversation_id,)
            )
        ]
        return Conversation(
            id=row["id"], title=row["title"], model=row["model"],
            system_prompt=row["system_prompt"], params=ChatParams(**json.loads(row["params"])),
            messages=messages, memory=row["memory"], window_start=row["window_start"],
            attached=row["attached"], created_at=row["created_at"], updated_at=row["updated_at"],
        )  # fmt: skip

    @_locked
    def latest(self) -> Conversation:
        row = self.db.execute(
            "SELECT id FROM conversations ORDER BY updated_at DESC, id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            raise ConversationNotFound("there is no conversation to continue yet")
        return self.get(row["id"])

    @_locked
    def list(self, limit: int = 50) -> list[dict]:
        rows = self.db.execute(
            "SELECT c.id, c.title, c.model, c.created_at, c.updated_at, COUNT(m.id) AS messages"
            " FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id"
            " GROUP BY c.id ORDER BY c.updated_at DESC, c.id DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    @_locked
    def rename(self, conversation_id: int, title: str) -> None:
        conv = self.get(conversation_id)
        conv.title = title
        self.save_state(conv)

    @_locked
    def delete(self, conversation_id: int) -> None:
        self.get(conversation_id)  # raises when absent
        self.db.execute("DELETE FROM conversations WHERE id=?", (conversation_id,))

    # -- export / import ---------------------------------------------------------

    @_locked
    def export_json(self, conversation_id: int) -> dict:
        conv = self.get(conversation_id)
        return {
            "format": EXPORT_FORMAT,
            "title": conv.title,
            "model": conv.model,
            "system_prompt": conv.system_prompt,
            "params": asdict(conv.params),
            "memory": conv.memory,
            "window_start": conv.window_start,
            "attached": conv.attached,
            "created_at": conv.created_at,
            "updated_at": conv.updated_at,
            "messages": [m.as_dict() for m in conv.messages],
        }

    @_locked
    def import_json(self, data: dict) -> Conversation:
        if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
            raise LocalLLMError(
                f"not a localllm conversation export (expected format {EXPORT_FORMAT!r})"
            )
        try:
            messages = [_imported_message(m) for m in data["messages"]]
            conv = Conversation(
                title=data["title"], model=data["model"], system_prompt=data["system_prompt"],
                params=ChatParams(**data["params"]), memory=data.get("memory", ""),
                window_start=int(data.get("window_start", 0)), messages=messages,
                attached=str(data.get("attached") or ""),
                created_at=data["created_at"], updated_at=data.get("updated_at", time.time()),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise LocalLLMError(f"the conversation export is malformed ({exc})") from None
        return self.create(conv)

    @_locked
    def export_markdown(self, conversation_id: int) -> str:
        conv = self.get(conversation_id)
        lines = [f"# {conv.title or 'Conversation'}", "", f"Model: `{conv.model}`", ""]
        if conv.system_prompt:
            lines += ["## System", "", conv.system_prompt, ""]
        for m in conv.messages:
            heading = "You" if m.role == "user" else "Assistant"
            note = f" ({m.note})" if m.note else ""
            lines += [f"## {heading}{note}", "", m.content, ""]
            if m.role == "assistant" and m.sources:
                lines += [f"- [{p['number']}] {source_label(p)}" for p in m.sources] + [""]
        return "\n".join(lines)


def _imported_message(data: dict) -> Message:
    """One message of an export, checked before anything is stored."""
    if not isinstance(data, dict):
        raise ValueError("a message is not an object")
    values = {f: data.get(f) for f in _MESSAGE_FIELDS}
    if values["role"] not in ROLES:
        raise ValueError(f"message role {values['role']!r} is not one of {', '.join(ROLES)}")
    if not isinstance(values["content"], str):
        raise ValueError("a message's content is not text")
    values["created_at"] = float(values["created_at"] or time.time())
    if values["sources"] is not None and not isinstance(values["sources"], list):
        raise ValueError("a message's sources are not a list")
    return Message(**values)
