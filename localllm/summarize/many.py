"""Several documents in one run, sharing the engine's slots.

With `--parallel N` on an engine that batches, the documents of one run are
summarized side by side: their part summaries share one limit of N calls in
flight, so the engine stays full while a short document finishes and a long one
is still being read. Results come back in the order the documents were given;
progress is one view across them (parts done, over every document).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from localllm.progress import ProgressReporter

MAX_DOCUMENTS_AT_ONCE = 4  # each brings its own reading, chunking and thread pool


class _SharedParts:
    """One document's progress, folded into the run's: its messages and parts done."""

    def __init__(self, shared: _RunProgress, name: str):
        self.shared, self.name = shared, name

    def message(self, text: str) -> None:
        self.shared.progress.message(text if text.startswith(self.name) else f"{self.name}: {text}")

    def start(self, description: str, total: int | None, unit: str = "B") -> None:
        self.shared.add(total or 0)

    def advance(self, amount: int) -> None:
        self.shared.advance(amount)

    def describe(self, description: str) -> None:
        pass

    def finish(self) -> None:
        pass


class _RunProgress:
    def __init__(self, progress: ProgressReporter, files: int):
        self.progress, self.files = progress, files
        self.total = self.done = 0
        self._lock = threading.Lock()
        progress.start(f"summarizing {files} files", None, unit="parts")

    def add(self, parts: int) -> None:
        with self._lock:
            self.total += parts
            self._describe()

    def advance(self, amount: int) -> None:
        with self._lock:
            self.done += amount
            self.progress.advance(amount)
            self._describe()

    def _describe(self) -> None:
        self.progress.describe(f"summarizing {self.files} files: {self.done} of {self.total}"
                               " parts known so far")  # fmt: skip


def summarize_documents(docs: list, summarizer_for: Callable, parallel: int,
                        progress: ProgressReporter) -> Iterator:  # fmt: skip
    """Each document's SummaryResult, in order; summarizer_for(progress, limiter) makes one
    Summarizer per document (they must not share per-document state)."""
    limiter = threading.Semaphore(parallel)
    run = _RunProgress(progress, len(docs))
    pool = ThreadPoolExecutor(min(len(docs), MAX_DOCUMENTS_AT_ONCE),
                              thread_name_prefix="localllm-document")  # fmt: skip
    summarizers = [summarizer_for(_SharedParts(run, doc.name), limiter) for doc in docs]
    futures = [pool.submit(s.summarize, doc) for s, doc in zip(summarizers, docs, strict=True)]
    try:
        for future in futures:
            yield future.result()
    except BaseException:
        for s in summarizers:
            s.stop()  # calls in flight end at their next token
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress.finish()
