"""Answers grounded in attached documents: the chat's side of `ask`.

A conversation with documents attached (an index, or files) retrieves passages for each
question. They go to the model with that question only, numbered, in the question's
language; later turns carry the question and its answer, not the passages again, so
the window holds the conversation rather than old excerpts. The question keeps which
passages it was given and the answer which of them it cited (checked as in `ask`).
"""

from __future__ import annotations

from localllm.chat.conversation import source_label
from localllm.documents.languages import language_of_question
from localllm.index import prompts
from localllm.index.citations import CitationCheck, CitationFilter
from localllm.index.search import Retriever

PASSAGES = 4  # passages retrieved for a question
SHARE_OF_WINDOW = 0.5  # the most of the prompt budget the passages may take


class Grounder:
    def __init__(self, retriever: Retriever, label: str, k: int = PASSAGES):
        self.retriever = retriever
        self.label = label  # what is attached, as the app names it
        self.k = k

    def passages_for(self, question: str, count, budget: int) -> list[dict] | None:
        """The passages for question, best first, within SHARE_OF_WINDOW of budget tokens
        (count measures text); None when none is about it."""
        found = self.retriever.search(question, self.k)
        if not found.relevant:
            return None
        chosen, used = [], 0
        for hit in found.hits:
            p = hit.passage
            cost = count(prompts.passage_block(len(chosen) + 1, p.where, p.text))
            if chosen and used + cost > budget * SHARE_OF_WINDOW:
                break
            used += cost
            chosen.append({"number": len(chosen) + 1, "path": p.path, "page": p.page,
                           "start": p.start, "end": p.end, "text": p.text})  # fmt: skip
        return chosen

    def close(self) -> None:
        self.retriever.index.close()


def grounded_content(question: str, passages: list[dict]) -> str:
    """The user message the model sees: how to use the passages, the passages, the question."""
    p = prompts.prompts_for(language_of_question(question))
    blocks = [prompts.passage_block(s["number"], source_label(s), s["text"]) for s in passages]
    return (f"{p.instructions}\n\n{p.passages}\n\n" + "\n\n".join(blocks)
            + f"\n\n{p.question} {question}")  # fmt: skip


def citation_filter(passages: list[dict]) -> CitationFilter:
    return CitationFilter(CitationCheck(len(passages)))


def cited(check: CitationCheck, passages: list[dict]) -> list[dict]:
    return [passages[n - 1] for n in check.cited]


def sources_note(cited_passages: list[dict] | None, given: list[dict] | None) -> str | None:
    """What the app shows under a grounded answer: the passages it cited, or, when it cited
    none, that it did not and which passages it had (None for an answer without documents)."""
    if not given:
        return None
    shown, head = cited_passages, "Sources:"
    if not cited_passages:
        shown, head = given, "The answer cites no passage; it was given:"
    lines = [head]
    for p in shown:
        quote = " ".join(p["text"].split())
        quote = quote if len(quote) <= 100 else quote[:97] + "..."
        lines.append(f"[{p['number']}] {source_label(p)}  \u201c{quote}\u201d")
    return "\n".join(lines)
