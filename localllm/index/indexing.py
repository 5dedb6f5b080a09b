"""Putting files into an index and keeping them current: `index add`, `update`, `rm`.

Every file is read with the readers the other document jobs use, cut into passages,
embedded when the index has an embedding model, and written in one transaction of its
own. `update` hashes only files whose size or modification time moved, and re-reads
only those whose content hash changed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from localllm.config import Settings
from localllm.documents.readers import file_sha256, open_document, pages
from localllm.errors import DocumentError, DocumentIndexError, LocalLLMError
from localllm.index.passages import Passage, cut_passages
from localllm.index.store import DocumentIndex, IndexedFile

DEFAULT_INDEX = "default"
# What a folder is searched for; a file named on the command line is read whatever it is.
DOCUMENT_SUFFIXES = frozenset((".txt", ".text", ".md", ".markdown", ".rst", ".org", ".tex",
                               ".html", ".htm", ".xhtml", ".pdf"))  # fmt: skip
EMBED_BATCH = 16  # passages embedded per call
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def index_path(settings: Settings, name: str) -> Path:
    """Where the index called name lives; names are plain words, so the path stays inside
    the indexes folder."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise DocumentIndexError(f"{name!r} is not an index name: use letters, digits, "
                                 "'.', '_' and '-' (up to 64)")  # fmt: skip
    return settings.data_dir / "indexes" / f"{name}.sqlite"


def index_names(settings: Settings) -> list[str]:
    folder = settings.data_dir / "indexes"
    return sorted(p.stem for p in folder.glob("*.sqlite")) if folder.is_dir() else []


def open_index(settings: Settings, name: str, *, create: bool = False) -> DocumentIndex:
    path = index_path(settings, name)
    if not path.exists():
        if not create:
            known = ", ".join(index_names(settings)) or "none yet"
            raise DocumentIndexError(
                f"no index called {name!r} (indexes: {known}): make it with "
                f"`localllm index add PATH... --index {name}`"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    return DocumentIndex(path)


def open_sources(settings: Settings, sources: list[str], progress,
                 spool_dir: Path) -> tuple[DocumentIndex, str, list[tuple[str, str]]]:  # fmt: skip
    """What a question is asked of: a named index (default: "default"), or files and
    folders indexed in memory for this use only. Returns (index, how to name it to the
    user, the paths that could not be read)."""
    names = [s for s in sources if s in index_names(settings) and not Path(s).exists()]
    if not sources or (len(sources) == 1 and names):
        name = sources[0] if sources else DEFAULT_INDEX
        return open_index(settings, name), f"index {name}", []
    if names:
        raise DocumentIndexError("give one index, or files and folders: not both")
    store = DocumentIndex(":memory:")
    report = Indexer(store, progress, spool_dir).add(sources)
    if not store.passage_count():
        store.close()
        why = "; ".join(f"{path}: {error}" for path, error in report.failed) or "no documents"
        raise DocumentIndexError(f"nothing to search ({why}): give an index name "
                                 "(localllm index list) or files and folders")  # fmt: skip
    shown = ", ".join(Path(s).name for s in sources[:3]) + (" …" if len(sources) > 3 else "")
    return store, shown, report.failed


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    passages: int = 0  # passages written
    pages: int = 0  # pages read (a file without pages counts as one)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "removed": self.removed, "failed": [{"path": p, "error": e}
                                                    for p, e in self.failed],
                "passages": self.passages, "pages": self.pages,
                "seconds": round(self.seconds, 3)}  # fmt: skip


class Indexer:
    def __init__(self, index: DocumentIndex, progress, spool_dir: Path,
                 embed: Callable[[list[str]], np.ndarray] | None = None):  # fmt: skip
        self.index = index
        self.progress = progress
        self.spool_dir = spool_dir
        self.embed = embed

    def add(self, paths: list[str]) -> IndexReport:
        """Index files and folders; a file already indexed is re-read only if it changed."""
        report = IndexReport()
        started = time.perf_counter()
        files = list(self._files(paths, report))
        known = {f.path: f for f in self.index.files()}
        self._run(files, known, report)
        report.seconds = time.perf_counter() - started
        return report

    def update(self) -> IndexReport:
        """Re-read the indexed files that changed, and drop those that are gone."""
        report = IndexReport()
        started = time.perf_counter()
        known = {f.path: f for f in self.index.files()}
        present = []
        for path in known:
            if Path(path).is_file():
                present.append(Path(path))
            else:
                self.index.remove_file(path)
                report.removed.append(path)
        self._run(present, known, report)
        report.seconds = time.perf_counter() - started
        return report

    def remove(self, paths: list[str]) -> IndexReport:
        """Drop files, or every file under a folder, from the index (the files stay)."""
        report = IndexReport()
        indexed = [f.path for f in self.index.files()]
        for given in paths:
            target = str(Path(given).expanduser().resolve())
            matches = [p for p in indexed if p == target or p.startswith(target + os.sep)]
            if not matches:
                report.failed.append((given, "not in the index"))
            for path in matches:
                self.index.remove_file(path)
                report.removed.append(path)
        return report

    def _files(self, paths: list[str], report: IndexReport) -> Iterator[Path]:
        for given in paths:
            path = Path(given).expanduser()
            if given == "-":
                report.failed.append((given, "an index holds files: save the text to a file"))
            elif path.is_dir():
                yield from _documents_under(path)
            elif path.is_file():
                yield path.resolve()
            else:
                report.failed.append((given, "no such file or folder"))

    def _run(self, files: list[Path], known: dict[str, IndexedFile], report: IndexReport):
        self.progress.start("indexing", len(files), unit="files")
        try:
            for path in files:
                self._one(path, known.get(str(path)), report)
                self.progress.advance(1)
        finally:
            self.progress.finish()

    def _one(self, path: Path, before: IndexedFile | None, report: IndexReport) -> None:
        name = str(path)
        try:
            stat = path.stat()
            if before and (before.size, before.mtime) == (stat.st_size, stat.st_mtime):
                report.unchanged.append(name)
                return
            if before and file_sha256(path) == before.sha256:
                report.unchanged.append(name)  # touched, not changed: nothing to re-read
                return
            doc = open_document(name, self.spool_dir)
            by_page = pages(doc)
            passages = cut_passages(by_page)
            vectors = self._vectors(passages)
        except (DocumentError, OSError, LocalLLMError) as exc:
            report.failed.append((name, str(exc)))  # said with the report
            return
        except Exception as exc:  # a reader's own failure (a PDF pypdf cannot take): skip it
            report.failed.append((name, f"could not be read ({type(exc).__name__}: {exc})"))
            return
        record = IndexedFile(name, doc.sha256, stat.st_size, stat.st_mtime, doc.kind,
                             len(by_page) if doc.kind == "pdf" else None, len(passages),
                             time.time())  # fmt: skip
        self.index.put_file(record, passages, vectors)
        (report.updated if before else report.added).append(name)
        report.passages += len(passages)
        report.pages += len(by_page)
        for warning in doc.warnings:
            self.progress.message(warning)

    def _vectors(self, passages: list[Passage]) -> np.ndarray | None:
        if self.embed is None or not passages:
            return None
        texts = [p.text for p in passages]
        parts = [self.embed(texts[i : i + EMBED_BATCH]) for i in range(0, len(texts), EMBED_BATCH)]
        return np.vstack(parts)


def _documents_under(folder: Path) -> Iterator[Path]:
    """The documents in a folder and its subfolders, in name order; hidden ones left out."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if not name.startswith(".") and path.suffix.lower() in DOCUMENT_SUFFIXES:
                yield path.resolve()
