"""Finding the passages a question is about: FTS5's BM25, vectors, or both fused.

The ranking is SQLite's (BM25) and the vectors' (cosine); hybrid ranking is reciprocal
rank fusion of the two lists. What this module adds is the question's side: its words
folded as the index folds them, and a relevance test, so a question about something the
documents never mention is answered "not in the documents" without a model call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from localllm.index.store import DocumentIndex, StoredPassage, quoted

RRF_K = 60  # the constant of Cormack et al.'s reciprocal rank fusion
CANDIDATES = 50  # passages each ranking contributes before fusion
# The best passage must hold this share of the question's informative weight (its content
# words, each weighted by its rarity in the index): below it, nothing relevant was found.
MIN_COVERAGE = 0.34

# Words that carry no topic, folded (lower case, no accents); questions are mostly these
# plus the few that matter.
_STOPWORD_LIST = """
a al algo algun alguna algunas alguno algunos ante antes aqui asi aun cada como con contra
cual cuales cuando cuanto cuanta cuantos cuantas de del desde donde dos el ella ellas ellos
en entre era eran es esa esas ese eso esos esta estaba estan estas este esto estos fue
fueron ha han hay la las le les lo los mas me mi muy no nos o os otra otro para pero poco
por porque puede que quien quienes se segun ser si sin sobre son su sus tambien tan te tiene
tienen todo todos tu un una unas uno unos usted y ya yo dime dice about after all also an
and any are as at be because been before being but by can could did do does doing for from
had has have he her here hers him his how i if in into is it its me more most my no nor not
of on or our out over she should so some such than that the their them then there these they
this those through to too under up very was we were what when where which while who whom why
will with would you your tell please
"""
STOPWORDS = frozenset(_STOPWORD_LIST.split())


def content_words(folded: list[str]) -> list[str]:
    """The informative words of a question (folded by the index, DocumentIndex.fold); all
    of them when every one is a stop word (a question such as "who is who")."""
    found = list(dict.fromkeys(folded))
    informative = [w for w in found if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]
    return informative or found


@dataclass
class Hit:
    passage: StoredPassage
    score: float  # the fused score, or the one ranking's when there is one
    lexical_rank: int | None = None
    dense_rank: int | None = None
    bm25: float | None = None
    cosine: float | None = None


@dataclass
class Retrieval:
    question: str
    hits: list[Hit]
    mode: str  # "lexical" | "dense" | "hybrid"
    coverage: float  # the best passage's share of the question's informative weight
    terms: dict[str, float] = field(default_factory=dict)  # informative word -> its weight

    @property
    def relevant(self) -> bool:
        return bool(self.hits) and self.coverage >= MIN_COVERAGE


class Retriever:
    def __init__(self, index: DocumentIndex,
                 embed: Callable[[list[str]], np.ndarray] | None = None):  # fmt: skip
        self.index = index
        self.embed = embed  # the index's embedding model, when it has vectors
        self._vectors: tuple[np.ndarray, np.ndarray] | None = None

    def search(self, question: str, k: int = 5, mode: str | None = None) -> Retrieval:
        mode = mode or ("hybrid" if self.embed is not None else "lexical")
        weights = self._weights(content_words(self.index.fold(question)))
        lexical = self._lexical(weights) if mode != "dense" else []
        dense = self._dense(question) if mode != "lexical" else []
        ranked = _fuse(lexical, dense) if mode == "hybrid" else lexical or dense
        top = ranked[:k]
        stored = self.index.passages(pid for pid, _ in top)
        hits = []
        for pid, score in top:
            if pid not in stored:  # removed by an `index update` running meanwhile
                continue
            hit = Hit(stored[pid], score)
            hit.lexical_rank, hit.bm25 = _rank_of(pid, lexical)
            hit.dense_rank, hit.cosine = _rank_of(pid, dense)
            hits.append(hit)
        held = self.index.holding((h.passage.id for h in hits), weights)
        coverage = max((_coverage(held[h.passage.id], weights) for h in hits), default=0.0)
        return Retrieval(question, hits, mode, coverage, weights)

    def _weights(self, terms: list[str]) -> dict[str, float]:
        """Each word's BM25 inverse document frequency: rare words weigh most, and a word
        the index has never seen weighs the most of all (the documents do not use it)."""
        total = max(1, self.index.passage_count())
        frequency = self.index.document_frequency(terms)
        return {t: math.log(1 + (total - frequency[t] + 0.5) / (frequency[t] + 0.5))
                for t in terms}  # fmt: skip

    def _lexical(self, weights: dict[str, float]) -> list[tuple[int, float]]:
        if not weights:
            return []
        match = " OR ".join(quoted(term) for term in weights)  # never read as FTS5 syntax
        return self.index.lexical(match, CANDIDATES)

    def _dense(self, question: str) -> list[tuple[int, float]]:
        if self.embed is None:
            return []
        if self._vectors is None:
            self._vectors = self.index.vectors()
        ids, matrix = self._vectors
        if not len(ids):
            return []
        query = np.asarray(self.embed([question])[0], dtype=np.float32)
        scores = matrix @ query
        order = np.argsort(-scores)[:CANDIDATES]
        return [(int(ids[i]), float(scores[i])) for i in order]


def _fuse(*rankings: list[tuple[int, float]]) -> list[tuple[int, float]]:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (pid, _) in enumerate(ranking, start=1):
            fused[pid] = fused.get(pid, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: -item[1])


def _rank_of(pid: int, ranking: list[tuple[int, float]]) -> tuple[int | None, float | None]:
    for rank, (candidate, score) in enumerate(ranking, start=1):
        if candidate == pid:
            return rank, score
    return None, None


def _coverage(present: set[str], weights: dict[str, float]) -> float:
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(w for term, w in weights.items() if term in present) / total
