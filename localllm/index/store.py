"""The document index: one SQLite file holding files, passages, their FTS5 index and
their vectors.

Lexical search is SQLite's own (FTS5, BM25) with the unicode61 tokenizer folding
accents, so "informacion" finds "información". Each file is written in one transaction:
an interrupted `index add` leaves the index as it was, plus the files it finished.
The format carries PRAGMA user_version and migrates forward, as the chat history does.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from localllm.errors import DocumentIndexError
from localllm.index.passages import Passage

TOKENIZER = "unicode61 remove_diacritics 2"


_TABLES = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE files (
        id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL,
        size INTEGER NOT NULL, mtime REAL NOT NULL, kind TEXT NOT NULL,
        pages INTEGER, indexed_at REAL NOT NULL)""",
    """CREATE TABLE passages (
        id INTEGER PRIMARY KEY,
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL, page INTEGER, start INTEGER NOT NULL,
        end INTEGER NOT NULL, text TEXT NOT NULL)""",
    "CREATE INDEX passages_by_file ON passages(file_id)",
    f"""CREATE VIRTUAL TABLE passages_fts USING fts5(
        text, content='passages', content_rowid='id', tokenize='{TOKENIZER}')""",
    """CREATE TRIGGER passages_added AFTER INSERT ON passages BEGIN
        INSERT INTO passages_fts(rowid, text) VALUES (new.id, new.text); END""",
    """CREATE TRIGGER passages_removed AFTER DELETE ON passages BEGIN
        INSERT INTO passages_fts(passages_fts, rowid, text)
        VALUES ('delete', old.id, old.text); END""",
    "CREATE VIRTUAL TABLE terms USING fts5vocab(passages_fts, 'row')",
    """CREATE TABLE vectors (
        passage_id INTEGER PRIMARY KEY REFERENCES passages(id) ON DELETE CASCADE,
        vector BLOB NOT NULL)""",
)


def _create_tables(db: sqlite3.Connection) -> None:
    for statement in _TABLES:  # one by one: executescript would commit half-way
        db.execute(statement)


def quoted(term: str) -> str:
    """A term as an FTS5 string: never read as query syntax (AND, NEAR, *, ...)."""
    return '"' + term.replace('"', '""') + '"'


# Each step takes the file from version i to i + 1; never edit a step that has shipped.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_create_tables]


@dataclass(frozen=True)
class IndexedFile:
    path: str
    sha256: str
    size: int
    mtime: float
    kind: str
    pages: int | None
    passages: int
    indexed_at: float


@dataclass(frozen=True)
class StoredPassage:
    id: int
    path: str
    page: int | None
    start: int
    end: int
    text: str

    @property
    def where(self) -> str:
        """file:page, as a citation shows it."""
        return self.path if self.page is None else f"{self.path}:{self.page}"


class DocumentIndex:
    def __init__(self, path: Path | str):
        self.path = path
        self._lock = threading.Lock()  # the scratch table for folding questions
        self._scratch = False
        try:
            self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                                       check_same_thread=False)  # fmt: skip
            self._db.execute("PRAGMA foreign_keys = ON")
            if str(path) != ":memory:":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except sqlite3.OperationalError as exc:  # locked, no permission, no such folder
            raise DocumentIndexError(f"cannot open {path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise DocumentIndexError(f"{path} is not a readable index ({exc}): remove it and "
                              "index the files again") from None  # fmt: skip

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise DocumentIndexError(
                f"{self.path} was written by a newer localllm: upgrade to use it"
            )
        for number in range(version, len(MIGRATIONS)):
            with self.transaction():
                MIGRATIONS[number](self._db)
                self._db.execute(f"PRAGMA user_version = {number + 1}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it or none. SQLite's own errors (a full disk, a
        lock held past the timeout) become a DocumentIndexError saying so."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise DocumentIndexError(f"cannot write {self.path}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    # -- settings kept with the index ---------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- files ------------------------------------------------------------------

    def files(self) -> list[IndexedFile]:
        rows = self._db.execute("""
            SELECT f.path, f.sha256, f.size, f.mtime, f.kind, f.pages,
                   (SELECT count(*) FROM passages p WHERE p.file_id = f.id), f.indexed_at
            FROM files f ORDER BY f.path""").fetchall()
        return [IndexedFile(*row) for row in rows]

    def file(self, path: str) -> IndexedFile | None:
        return next((f for f in self.files() if f.path == path), None)

    def put_file(self, record: IndexedFile, passages: list[Passage],
                 vectors: np.ndarray | None = None) -> None:  # fmt: skip
        """Replace what the index holds for record.path with these passages, all at once."""
        with self.transaction() as db:
            self._delete(db, record.path)
            file_id = db.execute(
                "INSERT INTO files (path, sha256, size, mtime, kind, pages, indexed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.path, record.sha256, record.size, record.mtime, record.kind,
                 record.pages, time.time()),
            ).lastrowid  # fmt: skip
            for i, p in enumerate(passages):
                passage_id = db.execute(
                    "INSERT INTO passages (file_id, ordinal, page, start, end, text) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (file_id, p.ordinal, p.page, p.start, p.end, p.text),
                ).lastrowid
                if vectors is not None:
                    db.execute("INSERT INTO vectors VALUES (?, ?)",
                               (passage_id, vectors[i].astype(np.float32).tobytes()))  # fmt: skip

    def remove_file(self, path: str) -> bool:
        with self.transaction() as db:
            return self._delete(db, path)

    @staticmethod
    def _delete(db: sqlite3.Connection, path: str) -> bool:
        row = db.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
        if row is None:
            return False
        db.execute("DELETE FROM vectors WHERE passage_id IN "
                   "(SELECT id FROM passages WHERE file_id = ?)", row)  # fmt: skip
        db.execute("DELETE FROM passages WHERE file_id = ?", row)
        db.execute("DELETE FROM files WHERE id = ?", row)
        return True

    # -- search -----------------------------------------------------------------

    def passage_count(self) -> int:
        return self._db.execute("SELECT count(*) FROM passages").fetchone()[0]

    def lexical(self, match: str, limit: int) -> list[tuple[int, float]]:
        """(passage id, BM25 score: higher is better) for an FTS5 MATCH expression."""
        rows = self._db.execute(
            "SELECT rowid, -bm25(passages_fts) AS score FROM passages_fts "
            "WHERE passages_fts MATCH ? ORDER BY bm25(passages_fts) LIMIT ?",
            (match, limit),
        ).fetchall()
        return [(int(i), float(s)) for i, s in rows]

    def fold(self, text: str) -> list[str]:
        """text's words as the index's own tokenizer makes them (lower case, accents folded
        as unicode61 folds them, in every script), in order, once each."""
        with self._lock:
            db = self._db
            if not self._scratch:
                db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.scratch USING fts5("
                           f"text, tokenize='{TOKENIZER}')")  # fmt: skip
                db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.scratch_terms "
                           "USING fts5vocab(temp, scratch, 'instance')")  # fmt: skip
                self._scratch = True
            db.execute("DELETE FROM temp.scratch")
            db.execute("INSERT INTO temp.scratch(text) VALUES (?)", (text,))
            rows = db.execute("SELECT term FROM temp.scratch_terms ORDER BY offset").fetchall()
            db.execute("DELETE FROM temp.scratch")
        return list(dict.fromkeys(term for (term,) in rows))

    def holding(self, passage_ids: Iterable[int], terms: Iterable[str]) -> dict[int, set[str]]:
        """Which of terms each passage holds, as the full-text index matches them."""
        ids = list(passage_ids)
        found: dict[int, set[str]] = {pid: set() for pid in ids}
        if not ids:
            return found
        marks = ",".join("?" * len(ids))
        for term in terms:
            rows = self._db.execute(
                f"SELECT rowid FROM passages_fts WHERE passages_fts MATCH ? AND rowid IN ({marks})",
                (quoted(term), *ids),
            ).fetchall()
            for (pid,) in rows:
                found[pid].add(term)
        return found

    def document_frequency(self, terms: Iterable[str]) -> dict[str, int]:
        """How many passages hold each (folded) term; 0 for terms the index has never seen."""
        wanted = sorted(set(terms))
        found = dict.fromkeys(wanted, 0)
        for term in wanted:
            row = self._db.execute("SELECT doc FROM terms WHERE term = ?", (term,)).fetchone()
            if row:
                found[term] = int(row[0])
        return found

    def passages(self, ids: Iterable[int]) -> dict[int, StoredPassage]:
        ids = list(ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            "SELECT p.id, f.path, p.page, p.start, p.end, p.text FROM passages p "
            f"JOIN files f ON f.id = p.file_id WHERE p.id IN ({marks})",
            ids,
        ).fetchall()
        return {row[0]: StoredPassage(*row) for row in rows}

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(passage ids, one unit vector per row) for every passage with a vector."""
        rows = self._db.execute("SELECT passage_id, vector FROM vectors ORDER BY passage_id")
        ids, blobs = [], []
        for passage_id, blob in rows:
            ids.append(passage_id)
            blobs.append(blob)
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), -1)
        return np.asarray(ids, dtype=np.int64), matrix

    def check(self) -> list[str]:
        """What is wrong with the file, if anything (for tests and `doctor`)."""
        problems = [row[0] for row in self._db.execute("PRAGMA integrity_check") if row[0] != "ok"]
        try:
            self._db.execute("INSERT INTO passages_fts(passages_fts) VALUES ('integrity-check')")
        except sqlite3.DatabaseError as exc:
            problems.append(f"full-text index: {exc}")
        orphans = self._db.execute(
            "SELECT count(*) FROM passages WHERE file_id NOT IN (SELECT id FROM files)"
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} passages belong to no file")
        return problems
