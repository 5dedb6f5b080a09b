"""Extraction from documents of any length: valid by construction, grounded in the source.

The document's text is cut into parts that are exact slices of it (so offsets
found in a part are offsets in the document). Each part is answered under a
grammar made from the schema, so the answer is always valid JSON of that
schema; an answer cut off at the reply limit is not guessed at: its part is
split in two and asked again. Every string the model gave is then looked for
in its part (grounding.py); one that is not there is dropped and counted as
invented. The parts' results are merged (merge.py). Parts may be asked in
parallel (--parallel) on an engine with slots; answers are cached.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from localllm.documents.cache import CallCache
from localllm.documents.calls import ModelCalls
from localllm.documents.chunking import spans
from localllm.documents.readers import Document, text_blocks
from localllm.engine import SamplingParams
from localllm.engine.grammar import schema_to_grammar
from localllm.errors import DocumentError, EngineError
from localllm.extract import prompts
from localllm.extract.grounding import FoldedText, find
from localllm.extract.merge import Found, PartResult, merge, merge_entities
from localllm.extract.schema import entity_schema, relaxed, scalars
from localllm.progress import ProgressReporter, SilentProgress

SAFETY_TOKENS = 8
MAX_PART_TOKENS = 1536  # small models extract worse from long passages
MAX_SPLITS = 2  # a part cut off this many times over is reported, not split again
TOKENS_PER_ENTITY = 16  # an entity's JSON, for sizing the list a reply has room for
TOKENS_PER_NAME = 6  # a part of N tokens names at most about N / 6 entities


@dataclass(frozen=True)
class ExtractOptions:
    entities: tuple[str, ...] = ()  # entity mode: these types
    schema: dict | None = None  # schema mode: the user's schema
    parallel: int = 1


@dataclass
class ExtractionResult:
    document: str
    data: dict
    found: list[dict]
    stats: dict
    conflicts: list[dict] = field(default_factory=list)


class Extractor:
    def __init__(self, engine, model_id: str, cache: CallCache, options: ExtractOptions,
                 progress: ProgressReporter | None = None):  # fmt: skip
        self.engine = engine
        self.model_id = model_id
        self.cache = cache
        self.options = options
        self.progress = progress or SilentProgress()
        self.calls = ModelCalls(engine)
        n_ctx = self.calls.n_ctx
        self.reserve = max(96, min(1024, n_ctx // 3))
        if options.schema is not None:
            self.schema = relaxed(options.schema)
        else:
            self.schema = entity_schema(options.entities, self.reserve // TOKENS_PER_ENTITY)
        self.grammar = schema_to_grammar(self.schema)
        self._entity_grammars: dict[int, str] = {}
        self._counting = threading.Lock()  # parts are grounded on --parallel's threads
        self.counts = dict.fromkeys(("values", "exact", "folded", "fuzzy", "invented",
                                     "unchecked", "cut_off_parts", "cached"), 0)  # fmt: skip

    def stop(self) -> None:
        self.calls.cancel.set()

    def extract(self, doc: Document) -> ExtractionResult:
        started = time.perf_counter()
        self.calls.records.clear()
        self.counts = dict.fromkeys(self.counts, 0)
        text = "".join(text_blocks(doc))
        language = prompts.language_of(text)
        room = self.calls.n_ctx - self._overhead(language) - self.reserve - SAFETY_TOKENS
        if room < 64:
            raise DocumentError(
                f"a {self.calls.n_ctx}-token window leaves no room for the text "
                "beside the schema and the answer: give --ctx 2048 or more"
            )
        size = min(room, MAX_PART_TOKENS, 2 * self.reserve)
        pieces = list(spans(text, self.calls.count, size))
        self.progress.start(f"extracting from {doc.name}", len(pieces), unit="parts")
        try:
            parts = self._run(text, pieces, language)
        finally:
            self.progress.finish()
        if self.options.schema is None:
            data, found, conflicts = {"entities": merge_entities(parts)}, [], []
        else:
            merged = merge(parts)
            data, found, conflicts = (
                merged.data,
                [f.as_dict() for f in merged.found],
                merged.conflicts,
            )
        stats = {**self.calls.totals(), **self.counts, "parts": len(pieces), "part_tokens": size,
                 "conflicts": len(conflicts), "n_ctx": self.calls.n_ctx,
                 "wall_s": round(time.perf_counter() - started, 3)}  # fmt: skip
        return ExtractionResult(doc.name, data, found, stats, conflicts)

    def _overhead(self, language: str) -> int:
        return len(self.calls.prompt(prompts.messages(language, "", self.options)))

    def _run(self, text: str, pieces: list[tuple[int, int]], language: str) -> list[PartResult]:
        def one(piece):
            result = self._part(text, piece, language, 0)
            self.progress.advance(1)
            return result

        if self.options.parallel <= 1:
            nested = [one(p) for p in pieces]
        else:
            with ThreadPoolExecutor(
                self.options.parallel, thread_name_prefix="localllm-extract"
            ) as pool:
                try:
                    nested = list(pool.map(one, pieces))
                except BaseException:
                    self.stop()
                    raise
        return [r for results in nested for r in results]

    def _part(
        self, text: str, piece: tuple[int, int], language: str, depth: int
    ) -> list[PartResult]:
        start, end = piece
        answer, cut = self._answer(text[start:end], language)
        if cut:
            if depth >= MAX_SPLITS or end - start < 200:
                with self._counting:
                    self.counts["cut_off_parts"] += 1
                self.progress.message(
                    f"characters {start}-{end}: the answer did not fit the "
                    f"{self.reserve}-token reply; nothing kept from this part"
                )
                return []
            middle = _middle(text, start, end)
            return (self._part(text, (start, middle), language, depth + 1)
                    + self._part(text, (middle, end), language, depth + 1))  # fmt: skip
        return [self._ground(answer, text, start, end)]

    def _grammar_for(self, part: str) -> str:
        """The grammar for this part. Entities: a list no longer than the part could name,
        so a small model that repeats itself stops at the list's end, not the reply's."""
        if self.options.schema is not None:
            return self.grammar
        most = self.reserve // TOKENS_PER_ENTITY
        items = max(4, min(most, self.calls.count(part) // TOKENS_PER_NAME))
        if items not in self._entity_grammars:
            self._entity_grammars[items] = schema_to_grammar(
                entity_schema(self.options.entities, items))  # fmt: skip
        return self._entity_grammars[items]

    def _answer(self, part: str, language: str) -> tuple[dict, bool]:
        messages = prompts.messages(language, part, self.options)
        grammar = self._grammar_for(part)
        key = CallCache.key("extract", prompts.PROMPT_VERSION, self.model_id, self.calls.n_ctx,
                            grammar, messages)  # fmt: skip
        cached = self.cache.get(key)
        if cached is not None:
            with self._counting:
                self.counts["cached"] += 1
            stored = json.loads(cached)
            return stored["answer"], stored["cut"]
        # The penalty looks back 64 tokens: mostly the answer itself, where a repeated entity
        # is the failure to avoid; the grammar still forces the JSON's own punctuation.
        params = SamplingParams(max_tokens=self.reserve, temperature=0.0, seed=0,
                                repeat_penalty=1.15, grammar=grammar)  # fmt: skip
        reply, stats = self.calls.generate("extract", self.calls.prompt(messages), params)
        cut = stats.stop_reason == "length"
        answer = {} if cut else _parsed(reply)
        self.cache.put(key, json.dumps({"answer": answer, "cut": cut}, ensure_ascii=False))
        return answer, cut

    def _ground(self, answer: dict, text: str, start: int, end: int) -> PartResult:
        """Every plain string looked for in the part; those not there are dropped."""
        with self._counting:
            return self._ground_part(answer, text, start, end)

    def _ground_part(self, answer: dict, text: str, start: int, end: int) -> PartResult:
        source = FoldedText(text[start:end])
        found: list[Found] = []
        dropped: list[str] = []
        for path, value, groundable in list(scalars(answer, self.schema, self.schema)):
            self.counts["values"] += 1
            if not groundable:
                self.counts["unchecked"] += 1
                continue
            match = find(value, source)
            if match is None:
                self.counts["invented"] += 1
                dropped.append(path)
                continue
            self.counts[match.how] += 1
            found.append(Found(path, text[start + match.start : start + match.end],
                               start + match.start, start + match.end, match.how))  # fmt: skip
        moved: dict[str, str] = {}
        answer = _prune(answer, "", "", set(dropped), moved)
        for f in found:
            f.path = moved[f.path]
        return PartResult(answer, found)


def _parsed(reply: str) -> dict:
    """The reply as JSON: always, under the grammar; an engine that ignored it is named."""
    try:
        answer = json.loads(reply)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise EngineError(
            "the engine's answer is not the JSON its grammar allows: it ignores "
            "grammars; run extract on this machine, llama-server or localllm serve"
        )
    return answer


def _middle(text: str, start: int, end: int) -> int:
    """A cut near the middle, at a paragraph or sentence end or a space if there is one."""
    middle = (start + end) // 2
    for mark in ("\n\n", ". ", "\n", " "):
        at = text.rfind(mark, start + (end - start) // 4, middle + (end - start) // 4)
        if at > start:
            return at + len(mark)
    return middle


_DROPPED = object()


def _prune(value, old: str, new: str, dropped: set[str], moved: dict[str, str]):
    """value without the dropped strings (out of their lists, null in their objects);
    moved gets each kept string's old path -> its new one (list items shift up)."""
    if old in dropped:
        return _DROPPED
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            step = "/" + key.replace("~", "~0").replace("/", "~1")
            kept = _prune(item, old + step, new + step, dropped, moved)
            out[key] = None if kept is _DROPPED else kept
        return out
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            kept = _prune(item, f"{old}/{i}", f"{new}/{len(out)}", dropped, moved)
            if kept is not _DROPPED:
                out.append(kept)
        return out
    if isinstance(value, str):
        moved[old] = new
    return value
