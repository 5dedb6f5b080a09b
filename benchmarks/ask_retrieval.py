"""Retrieval quality and speed of the document index behind `localllm ask`.

A generated collection (so its answers are known): fictional towns, in Spanish and
English, each described in a text file or on one page of a PDF (ten towns a PDF), with
facts drawn from lists; questions paraphrase the facts ("¿Cuántos vecinos tiene X?"
for "X ... tiene N habitantes"). Figures:

- recall@5 and MRR of lexical (FTS5 BM25), dense and hybrid (reciprocal rank fusion)
  ranking; dense uses MODEL in embedding mode, on the smaller collection only;
- index throughput (pages/s, passages/s) and query latency (p50/p95) at about 1,000 and
  10,000 passages, and how they grow (ratios of the larger to the smaller).

    python benchmarks/ask_retrieval.py [--embed MODEL] [--questions 200]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from localllm.config import Settings
from localllm.index.indexing import Indexer
from localllm.index.search import Retriever
from localllm.index.store import DocumentIndex
from localllm.progress import SilentProgress

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pdf_maker import write_pdf

SYLLABLES = "val de mo ra cas tri llo ben a vi des san to mar ca ver nal quin ta ne ro fuen te li"
SYLLABLES = SYLLABLES.split()
REGIONS = ["la Sierra Norte", "el Bajo Aragón", "la Ribera Alta", "los Montes de Toledo",
           "la Tierra de Campos", "el Alto Tajo", "la Vega Baja", "el Bierzo"]  # fmt: skip
CROPS = ["el olivo", "la vid", "el cereal", "el almendro", "la ganadería ovina", "el turismo"]
MONTHS_ES = ["enero", "marzo", "mayo", "julio", "agosto", "septiembre", "octubre"]
RIVERS = ["Tormes", "Jalón", "Cabriel", "Alberche", "Esla", "Gállego", "Segura", "Órbigo"]
INDUSTRIES = ["wool", "cider", "slate", "shipbuilding", "cheese", "pottery"]
MONTHS_EN = ["January", "March", "May", "July", "August", "September", "October"]


def town_name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 4))).capitalize()
        if name not in used:
            used.add(name)
            return name


def spanish_town(rng, name, near) -> tuple[str, list[tuple[str, str, str]]]:
    people, region, crop = rng.randint(200, 90000), rng.choice(REGIONS), rng.choice(CROPS)
    month, river = rng.choice(MONTHS_ES), rng.choice(RIVERS)
    people_text = f"{people:,}".replace(",", ".")
    text = (f"{name} es un municipio de {region} con {people_text} habitantes, a pocos "
            f"kilómetros de {near}. Su economía vive sobre todo de {crop}, y en los últimos "
            "años ha abierto casas rurales y una pequeña cooperativa que vende en la "
            "comarca.\n\n"
            f"Las fiestas patronales de {name} se celebran en {month}, con procesión, verbena "
            f"y comida popular en la plaza. Muchos vecinos de {near} suben ese día, y la "
            "charanga recorre las calles hasta bien entrada la madrugada.\n\n"
            f"El río {river} atraviesa el término municipal de {name}, y junto a su puente "
            "medieval se levanta una ermita románica. El camino de la ribera lleva hasta "
            f"{near} entre choperas y huertas.")  # fmt: skip
    questions = [(f"¿Cuántos vecinos tiene {name}?", f"{people_text} habitantes", name),
                 (f"¿En qué mes son las fiestas de {name}?", f"en {month}", name),
                 (f"¿Qué río pasa por {name}?", f"río {river}", name)]  # fmt: skip
    return text, questions


def english_town(rng, name, near) -> tuple[str, list[tuple[str, str, str]]]:
    people, industry = rng.randint(200, 90000), rng.choice(INDUSTRIES)
    month, founded = rng.choice(MONTHS_EN), rng.randint(1100, 1900)
    text = (f"{name} is a market town of {people:,} inhabitants, a short drive from {near}, "
            f"long known for its {industry}. Most of its people now work in the services, "
            "and the high street keeps a bakery, two pubs and a weekly market.\n\n"
            f"Its charter was granted in {founded}, and the old guildhall still stands on the "
            f"square. The records of {near} mention the town's merchants long before that, "
            "when the road to the coast ran through it.\n\n"
            f"The {name} fair is held every {month}, when the streets fill with stalls and "
            f"music. Visitors come from {near} and further, and the fair ends with fireworks "
            "over the river.")  # fmt: skip
    questions = [(f"How many people live in {name}?", f"{people:,} inhabitants", name),
                 (f"When did {name} get its charter?", f"granted in {founded}", name),
                 (f"In which month is the {name} fair?", f"every {month}", name)]  # fmt: skip
    return text, questions


def make_collection(folder: Path, towns: int, seed: int = 7) -> list[tuple[str, str, str]]:
    """Towns written out (every other ten as one PDF, a town a page); returns (question,
    the answer's text, the town)."""
    rng, used, questions, pdf_pages = random.Random(seed), set(), [], []
    names = [town_name(rng, used) for _ in range(towns)]
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        near = names[(i + 1) % towns]  # a neighbour's name in every passage: a distractor
        text, asked = (spanish_town if i % 2 == 0 else english_town)(rng, name, near)
        questions += asked
        if (i // 10) % 2:
            pdf_pages.append(text)
            if len(pdf_pages) == 10:
                write_pdf(folder / f"towns-{i:05}.pdf", pdf_pages)
                pdf_pages = []
        else:
            (folder / f"town-{i:05}.txt").write_text(f"{text}\n", encoding="utf-8")
    if pdf_pages:
        write_pdf(folder / "towns-last.pdf", pdf_pages)
    return questions


def judged(hits, fact: str, name: str) -> int | None:
    """The rank (from 1) of the first passage that holds the fact about this town."""
    for rank, hit in enumerate(hits, start=1):
        text = " ".join(hit.passage.text.split())  # a PDF's lines are broken
        if fact in text and name in text:
            return rank
    return None


def quality(retriever: Retriever, questions, mode: str) -> tuple[float, float, list[float]]:
    ranks, latencies = [], []
    for question, fact, name in questions:
        started = time.perf_counter()
        hits = retriever.search(question, k=10, mode=mode).hits
        latencies.append(time.perf_counter() - started)
        ranks.append(judged(hits, fact, name))
    recall5 = sum(1 for r in ranks if r is not None and r <= 5) / len(ranks)
    mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
    return recall5, mrr, latencies


def build(root: Path, towns: int, embed=None):
    questions = make_collection(root / "docs", towns)
    index = DocumentIndex(root / "index.sqlite")
    report = Indexer(index, SilentProgress(), root / "spool", embed).add([str(root / "docs")])
    return index, questions, report


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def load_embedder(model: str):
    from localllm.engine.embed import EmbeddingEngine
    from localllm.store.resolve import resolve_model

    resolved = resolve_model(Settings.from_env(), model, SilentProgress())
    engine = EmbeddingEngine.load(resolved.path)

    def embed(texts):
        return np.asarray(engine.embed(texts)[0], dtype=np.float32)

    return embed, resolved.name


def report_line(label: str, index, report) -> str:
    return (f"{label}: {index.passage_count()} passages from {report.pages} pages in "
            f"{report.seconds:.1f} s ({report.pages / report.seconds:.0f} pages/s, "
            f"{report.passages / report.seconds:.0f} passages/s)")  # fmt: skip


def print_quality(rows: dict) -> None:
    for mode, (recall5, mrr, lat) in rows.items():
        print(f"  {mode:<8} recall@5 {recall5:.3f}  MRR {mrr:.3f}  query p50 "
              f"{percentile(lat, 50):.1f} ms  p95 {percentile(lat, 95):.1f} ms  "
              f"({len(lat)} questions)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embed", default="smollm2-135m",
                        help="model for dense ranking ('none' to skip)")  # fmt: skip
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--passages", default="1000,10000",
                        help="collection sizes, in passages (about 1.5 a town)")  # fmt: skip
    args = parser.parse_args()
    sizes = [int(s) * 2 // 3 for s in args.passages.split(",")]
    rng = random.Random(1)
    lexical = {}
    with tempfile.TemporaryDirectory() as tmp:
        for towns in sizes:  # words only: the index's own throughput and query latency
            index, questions, report = build(Path(tmp) / f"lexical-{towns}", towns)
            sample = rng.sample(questions, min(args.questions, len(questions)))
            lexical[towns] = (index.passage_count(), report,
                              quality(Retriever(index), sample, "lexical"))  # fmt: skip
            print(report_line(f"{towns} towns, words only", index, report))
            print_quality({"lexical": lexical[towns][2]})
            index.close()
        if args.embed != "none":  # the smallest collection again, with vectors
            embed, embed_name = load_embedder(args.embed)
            index, questions, report = build(Path(tmp) / "dense", sizes[0], embed)
            sample = random.Random(1).sample(questions, min(args.questions, len(questions)))
            retriever = Retriever(index, embed)
            print(report_line(f"{sizes[0]} towns, vectors from {embed_name}", index, report))
            print_quality({mode: quality(retriever, sample, mode)
                           for mode in ("lexical", "dense", "hybrid")})  # fmt: skip
            index.close()
    if len(sizes) == 2:
        (n0, r0, q0), (n1, r1, q1) = (lexical[s] for s in sizes)
        rate0, rate1 = r0.pages / r0.seconds, r1.pages / r1.seconds
        print(f"x{n1 / n0:.1f} passages: indexing pages/s ratio {rate1 / rate0:.2f}; query "
              f"p50 ratio {percentile(q1[2], 50) / percentile(q0[2], 50):.2f}, p95 ratio "
              f"{percentile(q1[2], 95) / percentile(q0[2], 95):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
