"""`ask`: retrieve, fit the best passages into the window, answer with checked citations.

The passages go into the prompt best first while they fit, counted with the model's own
tokenizer (as the summarizer counts), leaving room for the answer; those left out are
said. When retrieval finds nothing relevant the answer is "not in the documents", and the
model is never called (nor loaded: the engine is asked for only when it is needed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from localllm.documents.calls import ModelCalls
from localllm.documents.languages import language_of_question
from localllm.engine.base import SamplingParams
from localllm.errors import ContextOverflow
from localllm.index import prompts
from localllm.index.citations import CitationCheck, CitationFilter
from localllm.index.search import Hit, Retrieval, Retriever

ANSWER_TOKENS = 384  # room kept for the answer
SAFETY_TOKENS = 16  # template tokens the count of a message list may miss at the edges


@dataclass(frozen=True)
class AskOptions:
    k: int = 5  # passages retrieved
    language: str | None = None  # answer language; None: the question's
    max_tokens: int = ANSWER_TOKENS
    temperature: float = 0.2
    seed: int | None = 0
    mode: str | None = None  # "lexical" | "dense" | "hybrid"; None: the best the index has


@dataclass
class Answer:
    question: str
    language: str
    text: str
    found: bool  # False: nothing relevant was retrieved; text is the not-found answer
    retrieval: Retrieval
    given: list[Hit] = field(default_factory=list)  # the passages in the prompt, numbered 1..n
    check: CitationCheck | None = None
    stats: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was left out or removed, said

    @property
    def flagged(self) -> bool:
        """An answer from the model that cites no passage: nothing ties it to the documents."""
        return self.found and self.check is not None and not self.check.cited

    def cited(self) -> list[tuple[int, Hit]]:
        return [(n, self.given[n - 1]) for n in (self.check.cited if self.check else [])]


class Asker:
    def __init__(self, retriever: Retriever, engine_for: Callable[[], object],
                 options: AskOptions = AskOptions()):  # fmt: skip
        self.retriever = retriever
        self._engine_for = engine_for  # loads the model on first use
        self.options = options

    def ask(self, question: str, on_text: Callable[[str], None] | None = None) -> Answer:
        question = question.strip()
        language = self.options.language or language_of_question(question)
        retrieval = self.retriever.search(question, self.options.k, self.options.mode)
        answer = Answer(question, language, "", retrieval.relevant, retrieval)
        if not retrieval.relevant:
            answer.text = prompts.prompts_for(language).not_found
            if on_text:
                on_text(answer.text)
            return answer
        calls = ModelCalls(self._engine_for())
        prompt, answer.given = self._fit(calls, language, question, retrieval.hits, answer)
        answer.check = CitationCheck(len(answer.given))
        citations = CitationFilter(answer.check)

        def shown(piece: str) -> None:
            clean = citations.feed(piece)
            answer.text += clean
            if on_text and clean:
                on_text(clean)

        params = SamplingParams(
            max_tokens=self.options.max_tokens,
            temperature=self.options.temperature,
            seed=self.options.seed,
        )
        _, stats = calls.generate("ask", prompt, params, on_text=shown)  # fmt: skip
        rest = citations.finish()
        answer.text += rest
        if on_text and rest:
            on_text(rest)
        answer.stats = {**calls.totals(), "stop_reason": stats.stop_reason}
        if not answer.text.strip() and stats.stop_reason == "length":
            answer.notes.append(f"the answer was empty after {self.options.max_tokens} tokens "
                                "(a model that reasons first spends them thinking): give a "
                                "larger --max-tokens")  # fmt: skip
        if answer.check.removed:
            numbers = ", ".join(f"[{n}]" for n in dict.fromkeys(answer.check.removed))
            answer.notes.append(f"removed citations of passages that do not exist: {numbers}")
        return answer

    def _fit(self, calls: ModelCalls, language: str, question: str, hits: list[Hit],
             answer: Answer) -> tuple[list[int], list[Hit]]:  # fmt: skip
        """The prompt with as many of the best passages as the window holds."""
        room = calls.n_ctx - self.options.max_tokens - SAFETY_TOKENS
        given: list[Hit] = []
        prompt = calls.prompt(prompts.messages(language, [], question))
        for hit in hits:
            trial = [*given, hit]
            blocks = [prompts.passage_block(i, h.passage.where, h.passage.text)
                      for i, h in enumerate(trial, start=1)]  # fmt: skip
            tokens = calls.prompt(prompts.messages(language, blocks, question))
            if len(tokens) > room:
                break
            given, prompt = trial, tokens
        if not given:
            raise ContextOverflow(
                f"the best passage and the question do not fit a {calls.n_ctx}-token window "
                f"with {self.options.max_tokens} tokens for the answer: give a larger --ctx"
            )
        if len(given) < len(hits):
            answer.notes.append(f"{len(hits) - len(given)} of the {len(hits)} passages found "
                                f"did not fit the {calls.n_ctx}-token window and were left "
                                "out")  # fmt: skip
        return prompt, given
