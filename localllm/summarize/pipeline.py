"""Map-reduce summarization that never exceeds the context window.

A document that fits takes one call. Otherwise each chunk is summarized (map),
the partial summaries are merged in groups that fit (reduce, as many levels as
needed), and the last pass, shaped by --length and --style, streams to the
caller. Every call is checked against the window before it is made: a prompt
plus its reply reserve larger than the window is a bug and stops the run.
Chunks are spooled to disk, so memory stays flat whatever the document's size.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from localllm.documents.cache import CallCache
from localllm.documents.chunking import Chunker, through_last_sentence
from localllm.documents.languages import detect_language
from localllm.documents.readers import Document, text_blocks
from localllm.engine import Finished, SamplingParams, Token
from localllm.engine.prefix import common_prefix
from localllm.engine.reasoning import answer_only, engine_thinking, split_reply
from localllm.progress import ProgressReporter, SilentProgress
from localllm.summarize.prompts import PROMPT_VERSION, PromptSet, prompts_for
from localllm.summarize.sizing import part_summary_tokens, part_tokens

SAFETY_TOKENS = 8
OVERLAP_SHARE = 0.04  # of a chunk, repeated at the start of the next one


@dataclass(frozen=True)
class SummaryOptions:
    length: str = "medium"  # short | medium | long
    style: str = "paragraph"  # paragraph | bullets
    lang: str = "auto"
    part_tokens: int | None = None  # None: chosen from the model's shape (sizing.py)
    watermark: object = None  # a WatermarkSpec: the summary the user reads is marked

    def final_reserve(self, n_ctx: int) -> int:
        wanted = {"short": 160, "medium": 384, "long": 768}[self.length]
        return min(wanted, n_ctx // 3)


@dataclass
class SummaryResult:
    document: str
    language: str
    summary: str
    chunk_summaries: list[str]
    stats: dict = field(default_factory=dict)


class WindowExceeded(AssertionError):
    """A prompt would not fit the window: a bug in the pipeline, never the user's fault."""


class Summarizer:
    def __init__(
        self,
        engine,
        model_id: str,
        cache: CallCache,
        options: SummaryOptions,
        progress: ProgressReporter | None = None,
        spool_dir: Path | None = None,
        parallel: int = 1,
        limiter: threading.Semaphore | None = None,
    ):
        self.engine = engine
        self.model_id = model_id
        self.cache = cache
        self.options = options
        self.progress = progress or SilentProgress()
        self.spool_dir = spool_dir
        self.map_reserve = min(256, engine.n_ctx // 4)  # the most a map or merge reply takes
        self.calls: list[dict] = []  # one entry per model call: kind, prompt and reply tokens
        # Map and merge calls in flight at once: an engine with slots (localllm serve, vLLM,
        # llama-server -np, the batching engine) answers them in one batch.
        self.parallel = max(1, parallel)
        self._cancel = threading.Event()  # set when the run stops early: in-flight calls end
        # Engine calls in flight, shared by the summarizers of several documents in one run.
        self._limiter = limiter or threading.Semaphore(self.parallel)
        self.part_tokens = 0  # the last document's part length, for stats
        self.part_reserve = self.map_reserve  # a part's summary: a share of the part's length

    @property
    def n_ctx(self) -> int:
        """Read afresh each time: a remote engine's window shrinks when its counts prove low."""
        return self.engine.n_ctx

    def stop(self) -> None:
        """End the calls in flight at their next token (another thread's run stopped)."""
        self._cancel.set()

    # -- one model call ------------------------------------------------------------

    def _prompt(self, prompts: PromptSet, template: str, text: str) -> list[int]:
        opts = self.options
        user = template.format(
            text=text, length=prompts.lengths[opts.length], style=prompts.styles[opts.style]
        )
        messages = [
            {"role": "system", "content": prompts.system},
            {"role": "user", "content": user},
        ]
        if self.engine.info.chat_template:
            # thinking models answer without reasoning first where their template can
            return self.engine.chat_tokens(messages, **answer_only(engine_thinking(self.engine)))
        return self.engine.tokenize(f"{prompts.system}\n\n{user}\n\n", special=False)

    def _overhead(self, prompts: PromptSet, template: str) -> int:
        return len(self._prompt(prompts, template, ""))

    def _repeated_overhead(self, prompts: PromptSet, template: str) -> int:
        """Prompt tokens besides the text that differ from call to call: those after the
        text starts. Engines keep the common start cached (per slot, or copied)."""
        empty = self._prompt(prompts, template, "")
        return len(empty) - common_prefix(empty, self._prompt(prompts, template, "Texto."))

    def _generate(self, kind: str, prompt: list[int], reserve: int,
                  on_token: Callable[[str], None] | None = None) -> str:  # fmt: skip
        if len(prompt) + reserve > self.n_ctx:
            raise WindowExceeded(
                f"{kind} prompt of {len(prompt)} tokens + {reserve} reply tokens exceeds the "
                f"{self.n_ctx}-token window"
            )
        params = SamplingParams(
            max_tokens=reserve,
            temperature=0.2,
            seed=0,
            repeat_penalty=1.1,
            watermark=self.options.watermark if kind == "final" else None,
        )
        text, stats = "", None
        with self._limiter:
            events = self.engine.stream(prompt, params, self._cancel)
            for event in split_reply(events, self.engine, prompt):  # reasoning is dropped
                if isinstance(event, Token):
                    text += event.text
                    if on_token:
                        on_token(event.text)
                elif isinstance(event, Finished):
                    stats = event.stats
        cut = stats.stop_reason == "length"
        self.calls.append({"kind": kind, "prompt_tokens": len(prompt), "reply_tokens":
                           stats.completion_tokens, "prefill_s": stats.prefill_s,
                           "decode_s": stats.decode_s, "cut": cut})  # fmt: skip
        if cut and on_token is None:
            # A reply stopped by its budget ends mid-sentence (often mid-word); what reads
            # it next, or the user, gets its whole sentences. A streamed one is already out.
            return through_last_sentence(text)
        return text.strip()

    def _cached_call(self, key: str, kind: str, prompt_fn, reserve: int) -> str:
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        summary = self._generate(kind, prompt_fn(), reserve)
        if self._cancel.is_set():
            raise KeyboardInterrupt  # a cut-off answer is not a summary: never cache it
        self.cache.put(key, summary)
        return summary

    def _calls(self, jobs: Iterable[tuple[str, str, Callable]], reserve: int,
               done: Callable[[], None] = lambda: None) -> list[str]:  # fmt: skip
        """Cached calls (key, kind, prompt_fn), self.parallel at a time, answers in order.

        At most twice as many as run are taken from jobs, so a long document's chunks are
        read from the spool as they are needed, not all at once."""
        if self.parallel == 1:
            out = []
            for key, kind, prompt_fn in jobs:
                out.append(self._cached_call(key, kind, prompt_fn, reserve))
                done()
            return out
        out, pending = [], deque()
        pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="localllm-summarize")
        try:
            for key, kind, prompt_fn in jobs:
                pending.append(pool.submit(self._cached_call, key, kind, prompt_fn, reserve))
                while len(pending) >= 2 * self.parallel:
                    out.append(pending.popleft().result())
                    done()
            while pending:
                out.append(pending.popleft().result())
                done()
        except BaseException:
            self._cancel.set()  # the calls in flight stop at their next token
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return out

    # -- the pipeline ----------------------------------------------------------------

    def summarize(
        self, doc: Document, on_token: Callable[[str], None] | None = None
    ) -> SummaryResult:
        started = time.perf_counter()
        self.calls = []  # stats are per document
        self.part_reserve = self.map_reserve
        language = self._language(doc)
        prompts = prompts_for(language)
        fingerprint = (PROMPT_VERSION, self.model_id, self.n_ctx, language, self.options.length,
                       self.options.style, doc.sha256)  # fmt: skip
        most = (
            self.n_ctx - self._overhead(prompts, prompts.chunk) - self.map_reserve - SAFETY_TOKENS
        )
        final_reserve = self.options.final_reserve(self.n_ctx)
        if self.spool_dir is not None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.spool_dir) as spool:
            chunks = Path(spool) / "chunks.jsonl"
            count, doc_tokens = self._spool_chunks(doc, chunks, most)
            single_room = self.n_ctx - self._overhead(prompts, prompts.final) - final_reserve
            self.part_tokens = most
            if count == 1 and doc_tokens <= single_room - SAFETY_TOKENS:
                text = _read_chunk(chunks, 0)
                summary = self._generate("final", self._prompt(prompts, prompts.final, text),
                                         final_reserve, on_token)  # fmt: skip
                partials: list[str] = []
            else:
                self.part_tokens = self._part_tokens(most, prompts)
                self.part_reserve = part_summary_tokens(self.part_tokens, self.map_reserve)
                if self.part_tokens < most:
                    count, doc_tokens = self._spool_chunks(doc, chunks, self.part_tokens)
                partials = self._map(chunks, count, prompts, (*fingerprint, self.part_reserve))
                summary = self._reduce(partials, prompts, fingerprint, final_reserve, on_token)
        if self.calls and self.calls[-1]["cut"]:
            self._say_final_cut(final_reserve, streamed=on_token is not None)
        return SummaryResult(doc.name, language, summary, partials,
                             self._stats(count, doc_tokens, started))  # fmt: skip

    def _say_final_cut(self, reserve: int, *, streamed: bool) -> None:
        ending = "stops mid-sentence" if streamed else "is kept to its last whole sentence"
        room = "" if self.options.length == "long" else " (--length long gives it more room)"
        self.progress.message(f"the summary reached its {reserve}-token budget and {ending}"
                              f"{room}")  # fmt: skip

    def _part_tokens(self, most: int, prompts: PromptSet) -> int:
        """The part length that reads the document soonest (sizing.py), at most `most`."""
        if self.options.part_tokens:
            return max(64, min(most, self.options.part_tokens))
        on_gpu = self.engine.plan.n_gpu_layers != 0
        chosen = part_tokens(most, self.engine.info,
                             self._repeated_overhead(prompts, prompts.chunk),
                             on_gpu=on_gpu)  # fmt: skip
        if chosen < most:
            self.progress.message(
                f"parts of {chosen} tokens, not the window's {most}: a long prompt prefills "
                "slower, and each part's summary is a share of its length"
            )
        return chosen

    def _language(self, doc: Document) -> str:
        if self.options.lang != "auto":
            return self.options.lang
        sample = ""
        for block in text_blocks(doc):
            sample += block
            if len(sample) >= 5000:
                break
        return detect_language(sample)

    def _spool_chunks(self, doc: Document, spool: Path, chunk_tokens: int) -> tuple[int, int]:
        """Chunk the whole document to a file; returns (chunks, document tokens)."""
        chunker = Chunker(
            lambda t: self.engine.tokenize(t, special=False, add_bos=False),
            self.engine.detokenize, chunk_tokens, int(chunk_tokens * OVERLAP_SHARE),
        )  # fmt: skip
        count = tokens = 0
        self.progress.message(f"{doc.name}: reading and measuring")
        with spool.open("w", encoding="utf-8") as out:
            for chunk in chunker.chunks(text_blocks(doc)):
                out.write(json.dumps(chunk, ensure_ascii=False) + "\n")
                count += 1
                tokens += chunker.count(chunk)
        return count, tokens

    def _map(self, spool: Path, count: int, prompts: PromptSet, fingerprint) -> list[str]:
        self.progress.start("summarizing chunks", count, unit="chunks")

        def done() -> None:
            self.progress.advance(1)
            self.progress.describe(f"summarizing chunks ({self._rate():.0f} tok/s)")

        jobs = ((CallCache.key("map", fingerprint, i, chunk), "map",
                 lambda c=chunk: self._prompt(prompts, prompts.chunk, c))
                for i, chunk in enumerate(_iter_chunks(spool)))  # fmt: skip
        try:
            partials = self._calls(jobs, self.part_reserve, done)
        finally:
            self.progress.finish()
        cut = sum(c["kind"] == "map" and c["cut"] for c in self.calls)
        if cut:  # written now (not read from the cache), and stopped by the budget
            self.progress.message(f"{cut} of {count} part summaries reached their "
                                  f"{self.part_reserve}-token budget: each is kept to its "
                                  "last whole sentence")  # fmt: skip
        return partials

    def _reduce(self, partials, prompts, fingerprint, final_reserve, on_token) -> str:
        level = 0
        while True:
            joined = "\n\n".join(partials)
            final_prompt = self._prompt(prompts, prompts.final, joined)
            if len(final_prompt) + final_reserve <= self.n_ctx:
                return self._generate("final", final_prompt, final_reserve, on_token)
            level += 1
            groups = self._groups(partials, prompts)
            self.progress.message(f"merging {len(partials)} partial summaries (level {level})")
            jobs = ((CallCache.key("reduce", fingerprint, level, g), "reduce",
                     lambda g=g: self._prompt(prompts, prompts.combine, "\n\n".join(g)))
                    for g in groups)  # fmt: skip
            before = len(self.calls)
            partials = self._calls(jobs, self.map_reserve)
            cut = sum(c["cut"] for c in self.calls[before:])
            if cut:
                self.progress.message(f"{cut} of {len(groups)} merged summaries reached their "
                                      f"{self.map_reserve}-token budget: each is kept to its "
                                      "last whole sentence")  # fmt: skip

    def _groups(self, partials: list[str], prompts: PromptSet) -> list[list[str]]:
        """Consecutive partials in groups whose merge prompt fits (at least two per group)."""
        room = (
            self.n_ctx - self._overhead(prompts, prompts.combine) - self.map_reserve - SAFETY_TOKENS
        )
        counter = Chunker(lambda t: self.engine.tokenize(t, special=False, add_bos=False),
                          self.engine.detokenize, max(16, room // 2))  # fmt: skip
        groups: list[list[str]] = [[]]
        for partial in partials:
            # A partial longer than half the room is split into pieces of at most half, so
            # any two always fit together; all of its text goes on to the merge.
            pieces = list(counter.chunks(iter([partial]))) or [""]
            if len(pieces) > 1:
                self.progress.message(
                    f"a partial summary of {counter.count(partial)} tokens is merged in "
                    f"{len(pieces)} pieces"
                )
            for text in pieces:
                candidate = [*groups[-1], text]
                if groups[-1] and counter.count("\n\n".join(candidate)) > room:
                    groups.append([text])
                else:
                    groups[-1] = candidate
        return groups

    def _rate(self) -> float:
        """Tokens processed (read and written) per second of model time so far."""
        seconds = sum(c["prefill_s"] + c["decode_s"] for c in self.calls)
        tokens = sum(c["prompt_tokens"] + c["reply_tokens"] for c in self.calls)
        return tokens / seconds if seconds else 0.0

    def _stats(self, chunks: int, doc_tokens: int, started: float) -> dict:
        return {
            "chunks": chunks,
            "document_tokens": doc_tokens,
            "calls": len(self.calls),
            "map_calls": sum(c["kind"] == "map" for c in self.calls),
            "reduce_calls": sum(c["kind"] == "reduce" for c in self.calls),
            "prompt_tokens": sum(c["prompt_tokens"] for c in self.calls),
            "summary_tokens": sum(c["reply_tokens"] for c in self.calls),
            "cut_at_budget": sum(c["cut"] for c in self.calls),
            "prefill_s": round(sum(c["prefill_s"] for c in self.calls), 3),
            "decode_s": round(sum(c["decode_s"] for c in self.calls), 3),
            "wall_s": round(time.perf_counter() - started, 3),
            "n_ctx": self.n_ctx,
            "part_tokens": self.part_tokens,
            "part_summary_tokens": self.part_reserve,
            "parallel": self.parallel,
            "flash_attention": getattr(self.engine, "flash_attention", None),
        }


def _iter_chunks(spool: Path) -> Iterator[str]:
    with spool.open(encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def _read_chunk(spool: Path, index: int) -> str:
    for i, chunk in enumerate(_iter_chunks(spool)):
        if i == index:
            return chunk
    raise IndexError(index)
