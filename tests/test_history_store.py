"""The history database itself: migrations, concurrent writers, all-or-nothing imports."""

from __future__ import annotations

import sqlite3

import pytest

from localllm.chat.conversation import Conversation, Message
from localllm.chat.history import INITIAL_SCHEMA, MIGRATIONS, History
from localllm.errors import LocalLLMError


def test_a_database_from_before_migrations_is_upgraded_and_kept(tmp_path):
    path = tmp_path / "history.sqlite3"
    db = sqlite3.connect(path)  # what localllm 0.1 wrote: the schema, user_version 0
    db.executescript(INITIAL_SCHEMA)
    db.execute(
        "INSERT INTO conversations (id, title, model, created_at, updated_at)"
        " VALUES (1, 'Lisbon trip', 'smollm2-135m:q4_1', 1.0, 2.0)"
    )
    db.execute(
        "INSERT INTO messages (conversation_id, seq, role, content, created_at)"
        " VALUES (1, 0, 'user', 'What should I pack?', 1.5)"
    )
    db.commit()
    db.close()
    history = History(path)
    assert history.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conv = history.get(1)
    assert conv.title == "Lisbon trip"
    assert [m.content for m in conv.messages] == ["What should I pack?"]


def test_a_database_from_a_newer_localllm_is_refused_untouched(tmp_path):
    path = tmp_path / "history.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(LocalLLMError, match="newer localllm"):
        History(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_two_writers_with_stale_copies_both_keep_their_messages(tmp_path):
    path = tmp_path / "history.sqlite3"
    first, second = History(path), History(path)
    conv = first.create(Conversation(model="m", messages=[Message("user", "hi")]))
    a, b = first.get(conv.id), second.get(conv.id)  # both read one message
    first.add_message(a, Message("user", "from the first window"))
    second.add_message(b, Message("user", "from the second window"))
    stored = [m.content for m in History(path).get(conv.id).messages]
    assert stored == ["hi", "from the first window", "from the second window"]


def test_an_import_that_fails_midway_stores_nothing(tmp_path):
    history = History(tmp_path / "history.sqlite3")
    good = Message("user", "hello")
    bad = Message("user", None)  # NOT NULL content: the insert fails after the first one
    with pytest.raises(sqlite3.IntegrityError):
        history.create(Conversation(model="m", messages=[good, bad]))
    assert history.list() == []
