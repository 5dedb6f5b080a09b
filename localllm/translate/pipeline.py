"""Translate documents of any length, keeping their structure, checked chunk by chunk.

The document becomes a layout (layout.py): fixed markup and segments of visible
text. Segments, with what must not change masked (protect.py), are grouped into
chunks of whole paragraphs that fit the window with room for the previous
chunk's source and translation (so names and terms stay consistent) and for a
reply longer than its source. Each answer is split back into its paragraphs and
checked: markers intact, in the target language, not an echo, glossary kept. A
chunk whose answer lost its shape is translated paragraph by paragraph; a
paragraph that fails a check is tried again with a stricter instruction, and
after the last try kept in the source language and reported. Nothing is dropped.
Answers are cached, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from localllm.documents.cache import CallCache
from localllm.documents.calls import ModelCalls
from localllm.documents.chunking import Chunker
from localllm.documents.languages import detect_language, leans_to
from localllm.documents.readers import Document, full_text
from localllm.engine import SamplingParams
from localllm.errors import DocumentError
from localllm.progress import ProgressReporter, SilentProgress
from localllm.translate.glossary import Glossary, fold
from localllm.translate.layout import BLANK_LINES, Layout, layout_for
from localllm.translate.planning import Unit, chunks_of, runs_of, segment_texts
from localllm.translate.prompts import PROMPT_VERSION, Instructions, instructions_for
from localllm.translate.protect import MARKER, marker_problem, mask, unmask

CONTEXT_SHARE = 0.5  # of a chunk's source budget: the previous chunk's text and translation
REPLY_GROWTH = 1.6  # a translation may take this many times its source's tokens
REPLY_SLACK = 24
MAX_CHUNK_TOKENS = 1024  # longer chunks gain little and make every retry dearer
SAFETY_TOKENS = 16
STRICTER_ROOM = 80  # tokens kept free for the stricter instruction of a retry
ECHO_LETTERS = 20  # shorter text ("Total", a name) may rightly read the same translated
LANGUAGE_LETTERS = 40  # shorter text is too little to tell its language
ECHO_SIMILARITY = 0.9


@dataclass(frozen=True)
class TranslateOptions:
    target: str
    source: str = "auto"
    tries: int = 3
    glossary: Glossary = field(default_factory=Glossary)
    parallel: int = 1  # runs of chunks translated side by side (each keeps its own context)
    watermark: object = None  # a WatermarkSpec: every translated chunk is marked


@dataclass
class TranslationResult:
    document: str
    source: str
    target: str
    text: str
    untranslated: list[dict]
    stats: dict


class Translator:
    def __init__(self, engine, model_id: str, cache: CallCache, options: TranslateOptions,
                 progress: ProgressReporter | None = None):  # fmt: skip
        self.engine = engine
        self.model_id = model_id
        self.cache = cache
        self.options = options
        self.progress = progress or SilentProgress()
        self.calls = ModelCalls(engine)
        self.context_tokens = 0
        self._counting = threading.Lock()

    def stop(self) -> None:
        self.calls.cancel.set()

    def translate(self, doc: Document) -> TranslationResult:
        started = time.perf_counter()
        self.calls.records.clear()
        self.context_tokens = 0
        layout = layout_for(full_text(doc), "html" if doc.kind == "html" else "markdown")
        if not layout.segments:
            raise DocumentError(f"{doc.name} has no text to translate (only markup or code)")
        source = self._source_language(doc, layout)
        instructions = instructions_for(source, self.options.target)
        budget = self._budget(instructions, layout)
        units = self._units(layout, budget)
        self.progress.start(f"translating {doc.name}", len(units), unit="parts")
        try:
            self._translate_runs(runs_of(list(chunks_of(units, budget)), self.options.parallel),
                                 instructions, doc, budget)  # fmt: skip
        finally:
            self.progress.finish()
        text = layout.render(segment_texts(layout, units))
        untranslated = [
            {"paragraph": u.paragraph + 1, "text": u.source[:80], "reason": u.problem,
             "tries": u.tries}
            for u in units if u.translation is None
        ]  # fmt: skip
        return TranslationResult(doc.name, source, self.options.target, text, untranslated,
                                 self._stats(layout, units, budget, started))  # fmt: skip

    def _translate_runs(self, runs: list[list[list[Unit]]], instructions: Instructions,
                        doc: Document, budget: int) -> None:  # fmt: skip
        """Each run of consecutive chunks in order, each chunk with the one before as context;
        several runs side by side (--parallel), so an engine with slots answers them at once."""

        def run(chunks: list[list[Unit]]) -> None:
            context: tuple[str, str] | None = None
            for chunk in chunks:
                self._translate_chunk(chunk, instructions, context, doc)
                context = self._context(chunk, int(budget * CONTEXT_SHARE))
                self.progress.advance(len(chunk))

        if len(runs) == 1:
            run(runs[0])
            return
        with ThreadPoolExecutor(len(runs), thread_name_prefix="localllm-translate") as pool:
            futures = [pool.submit(run, chunks) for chunks in runs]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                self.stop()  # the other runs end at their next token
                raise

    # -- planning --------------------------------------------------------------------

    def _source_language(self, doc: Document, layout: Layout) -> str:
        target = self.options.target
        if self.options.source != "auto":
            source = self.options.source
        else:
            sample = " ".join(MARKER.sub("", mask(s.text).text) for s in layout.segments[:200])
            source = detect_language(sample[:5000])
            self.progress.message(f"{doc.name}: the text reads as {source} (--from to say)")
        if source == target:
            raise DocumentError(f"{doc.name} is already in {target}: give --from if it is not, "
                                "or another --to")  # fmt: skip
        return source

    def _budget(self, instructions: Instructions, layout: Layout) -> int:
        """Source tokens per chunk: room for them, the context and a longer reply."""
        terms = self.options.glossary.terms
        overhead = len(self.calls.prompt([
            {"role": "system", "content": instructions.system(list(terms))},
            {"role": "user", "content": ""},
        ]))  # fmt: skip
        room = self.calls.n_ctx - overhead - STRICTER_ROOM - SAFETY_TOKENS - REPLY_SLACK
        budget = int(room / (1 + CONTEXT_SHARE + REPLY_GROWTH))
        if budget < 32:
            raise DocumentError(
                f"a {self.calls.n_ctx}-token window leaves no room to translate in (the "
                f"instructions{' and glossary' if terms else ''} take {overhead} tokens): "
                "give --ctx 2048 or more"
            )
        return min(budget, MAX_CHUNK_TOKENS)

    def _units(self, layout: Layout, budget: int) -> list[Unit]:
        """Every segment as a unit; one longer than the budget in pieces at sentence ends."""
        splitter = Chunker(lambda t: self.engine.tokenize(t, special=False, add_bos=False),
                           self.engine.detokenize, max(16, int(budget * 0.8)))  # fmt: skip
        units = []
        for index, segment in enumerate(layout.segments):
            masked = mask(segment.text)
            tokens = self.calls.count(masked.text)
            pieces = (
                [segment.text] if tokens <= budget else list(splitter.chunks(iter([segment.text])))
            )
            for piece in pieces:
                masked = mask(piece) if len(pieces) > 1 else masked
                count = tokens if len(pieces) == 1 else self.calls.count(masked.text)
                unit = Unit(index, segment.paragraph, piece, masked, count)
                if masked.letters < 2:  # nothing to translate: a number, a symbol, a marker
                    unit.translation = piece
                units.append(unit)
        return units

    # -- translating -----------------------------------------------------------------

    def _translate_chunk(self, chunk: list[Unit], instructions: Instructions,
                         context: tuple[str, str] | None, doc: Document) -> None:  # fmt: skip
        todo = [u for u in chunk if u.translation is None]
        if not todo:
            return
        answers = self._ask(todo, instructions, context, attempt=0)
        retry = []
        if answers is None:  # the answer lost its shape: one paragraph at a time instead
            retry = [(u, 0 if len(todo) > 1 else 1) for u in todo]
        else:
            for unit, answer in zip(todo, answers, strict=True):
                unit.tries = 1
                if not self._accept(unit, answer, instructions):
                    retry.append((unit, 1))
        for unit, first in retry:
            for attempt in range(first, self.options.tries):
                answers = self._ask([unit], instructions, context, attempt, unit.problem)
                unit.tries = attempt + 1
                if answers is None:
                    unit.problem = "the answer was cut off at the reply limit"
                elif self._accept(unit, answers[0], instructions):
                    break
            if unit.translation is None:
                self.progress.message(f"{doc.name}: paragraph {unit.paragraph + 1} kept in the "
                                      f"source language: {unit.problem} (after {unit.tries} "
                                      "tries)")  # fmt: skip

    def _accept(self, unit: Unit, answer: str, instructions: Instructions) -> bool:
        answer = re.sub(r"\s*\n\s*", " ", answer)  # one line: a table cell must stay in its row
        unit.problem = self._problem(unit, answer, instructions)
        if unit.problem is None:
            unit.translation = unmask(unit.masked, answer)
        return unit.problem is None

    def _problem(self, unit: Unit, answer: str, instructions: Instructions) -> str | None:
        """Why answer is not an acceptable translation of unit, or None."""
        if not answer.strip():
            return "the answer was empty"
        if problem := marker_problem(unit.masked, answer):
            return problem
        source, said = MARKER.sub("", unit.masked.text), MARKER.sub("", answer)
        if unit.masked.letters >= ECHO_LETTERS and _similar(source, said):
            return "it repeats the source text instead of translating it"
        letters = sum(ch.isalpha() for ch in said)
        if letters >= LANGUAGE_LETTERS and leans_to(said, instructions.target,
                                                    instructions.source) < 0.5:  # fmt: skip
            return f"it is not in {instructions.name(instructions.target)}"
        broken = self.options.glossary.broken(unit.source, unmask(unit.masked, answer))
        if broken:
            term, wanted = broken[0]
            return f"the glossary's {term!r} is not translated as {wanted!r}"
        return None

    def _ask(self, units: list[Unit], instructions: Instructions,
             context: tuple[str, str] | None, attempt: int,
             problem: str | None = None) -> list[str] | None:  # fmt: skip
        """The answer for units, one paragraph each; None if it lost its shape."""
        reserve = int(sum(u.tokens for u in units) * REPLY_GROWTH) + REPLY_SLACK
        system = instructions.system(self.options.glossary.relevant(
            " ".join(u.source for u in units)))  # fmt: skip
        if attempt and problem:
            system += "\n\n" + instructions.stricter(problem)
        text = "\n\n".join(u.masked.text for u in units)
        messages = [{"role": "system", "content": system}]
        if context:
            messages += [{"role": "user", "content": context[0]},
                         {"role": "assistant", "content": context[1]}]  # fmt: skip
        messages.append({"role": "user", "content": text})
        prompt = self.calls.prompt(messages)
        if len(prompt) + reserve > self.calls.n_ctx and context:
            return self._ask(units, instructions, None, attempt, problem)  # room over context
        key = CallCache.key("translate", PROMPT_VERSION, self.model_id, self.calls.n_ctx,
                            messages, attempt, _mark_id(self.options.watermark))  # fmt: skip
        lone = len(units) == 1
        # One paragraph asked for: a blank line ends it (a small model may go on past it).
        reply, cut = self._answer(key, prompt, reserve, attempt, "unit" if lone else "chunk",
                                  ("\n\n",) if lone else ())  # fmt: skip
        if context:
            tokens = self.calls.count(context[0]) + self.calls.count(context[1])
            with self._counting:
                self.context_tokens += tokens
        parts = [p.strip() for p in BLANK_LINES.split(reply.strip()) if p.strip()]
        if cut and len(parts) > len(units):
            parts, cut = parts[: len(units)], False  # it went on past the text: not ours
        if cut:
            return None
        if lone:
            return [" ".join(parts)]
        return parts if len(parts) == len(units) else None

    def _answer(self, key: str, prompt: list[int], reserve: int, attempt: int, kind: str,
                stop: tuple[str, ...]) -> tuple[str, bool]:  # fmt: skip
        """(reply, cut off) from the cache or the model."""
        cached = self.cache.get(key)
        if cached is not None:
            stored = json.loads(cached)
            return stored["reply"], stored["cut"]
        params = SamplingParams(max_tokens=reserve, temperature=0.2 if attempt == 0 else 0.5,
                                seed=attempt, repeat_penalty=1.05, stop=stop,
                                watermark=self.options.watermark)  # fmt: skip
        reply, stats = self.calls.generate("retry" if attempt else kind, prompt, params)
        cut = stats.stop_reason == "length"
        self.cache.put(key, json.dumps({"reply": reply, "cut": cut}, ensure_ascii=False))
        return reply, cut

    def _context(self, chunk: list[Unit], budget: int) -> tuple[str, str] | None:
        """The end of this chunk's source and translation, for the next chunk's prompt."""
        done = [u for u in chunk if u.translation is not None and u.masked.letters >= 2]
        pairs, used = [], 0
        for unit in reversed(done):
            cost = unit.tokens * 2
            if used + cost > budget:
                break
            pairs.insert(0, unit)
            used += cost
        if not pairs:
            return None
        return ("\n\n".join(u.source for u in pairs), "\n\n".join(u.translation for u in pairs))

    def _stats(self, layout: Layout, units: list[Unit], budget: int, started: float) -> dict:
        totals = self.calls.totals()
        retries = self.calls.totals("retry")
        output = totals["output_tokens"]
        return {
            **totals,
            "paragraphs": layout.paragraphs,
            "parts": len(units),
            "chunk_tokens": budget,
            "source_tokens": sum(u.tokens for u in units),
            "context_tokens": self.context_tokens,
            "retry_calls": retries["calls"],
            "retry_output_tokens": retries["output_tokens"],
            "retry_share": round(retries["output_tokens"] / output, 4) if output else 0.0,
            "context_share": round(self.context_tokens / totals["prompt_tokens"], 4)
            if totals["prompt_tokens"]
            else 0.0,
            "untranslated": sum(u.translation is None for u in units),
            "n_ctx": self.calls.n_ctx,
            "wall_s": round(time.perf_counter() - started, 3),
        }


def _mark_id(spec) -> str | None:
    """Which watermark an answer carries, for its cache key (a hash: never the key itself)."""
    if spec is None:
        return None
    return hashlib.sha256(repr((spec.key, spec.gamma, spec.delta, spec.context)).encode()
                          ).hexdigest()[:16]  # fmt: skip


def _similar(a: str, b: str) -> bool:
    a, b = fold(" ".join(a.split())), fold(" ".join(b.split()))
    return a == b or SequenceMatcher(None, a, b, autojunk=False).ratio() >= ECHO_SIMILARITY
