"""Precision and recall of `localllm extract`'s default entities, and what grounding catches.

A document set with known entities, written here: short news items in Spanish and
English whose people, organisations, places, dates and amounts come from lists,
so the gold answer of each is exactly what was put in. Every document is
extracted in-process on the model; the model's raw answers (before grounding)
are kept, so the report can say:

- precision and recall of the entities, by normalised text and type, of the raw
  answers and of what extract returns (after grounding);
- invented values: raw values that are not in the document (not even ignoring case
  and accents), and the share the grounding check caught; values the fuzzy match
  let through although they are not in the text are counted separately.

    python benchmarks/extract_quality.py [MODEL] [--docs 24] [--ctx 2048]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from localllm.config import Settings
from localllm.documents.cache import CallCache
from localllm.documents.readers import open_document
from localllm.engine import LoadOptions
from localllm.engine.llama import load_engine
from localllm.extract.grounding import fold
from localllm.extract.pipeline import ExtractOptions, Extractor
from localllm.extract.schema import DEFAULT_ENTITIES
from localllm.progress import SilentProgress
from localllm.store.resolve import resolve_model

PEOPLE = [
    "María González",
    "Juan Pérez",
    "Lucía Fernández",
    "Carlos Ruiz",
    "Ana Martínez",
    "Peter Miller",
    "Sarah Jones",
    "David Brown",
    "Emma Wilson",
    "Tomás Navarro",
]
ORGS = [
    "Telefónica",
    "Banco Santander",
    "Universidad de Salamanca",
    "Iberdrola",
    "Acme Tools",
    "Northwind Traders",
    "the University of Leeds",
    "Renfe",
]
PLACES = ["Sevilla", "Madrid", "Valencia", "Bilbao", "Granada", "Leeds", "Bristol", "Zaragoza"]
DATES_ES = ["14 de marzo de 2025", "1 de junio de 2024", "3 de mayo de 2023", "20 de enero de 2026"]
DATES_EN = ["14 March 2025", "1 June 2024", "3 May 2023", "20 January 2026"]
MONEY_ES = ["2,5 millones de euros", "300.000 euros", "45 millones de euros"]
MONEY_EN = ["£1.2 million", "$300,000", "€45 million"]
TEMPLATES_ES = [
    "El {date}, {org} firmó un acuerdo con el ayuntamiento de {place} por {money}. "
    "{person} presentó el proyecto ante la prensa.",
    "{person}, portavoz de {org}, anunció en {place} una inversión de {money} el {date}.",
]
TEMPLATES_EN = [
    "On {date}, {org} signed an agreement with the city of {place} worth {money}. "
    "{person} presented the project to the press.",
    "{person}, a spokesperson for {org}, announced an investment of {money} in {place} on "
    "{date}.",
]  # fmt: skip


def make_documents(n: int) -> list[tuple[str, set[tuple[str, str]]]]:
    rng = random.Random(11)
    docs = []
    for i in range(n):
        spanish = i % 2 == 0
        facts = {"person": rng.choice(PEOPLE), "org": rng.choice(ORGS), "place": rng.choice(PLACES),
                 "date": rng.choice(DATES_ES if spanish else DATES_EN),
                 "money": rng.choice(MONEY_ES if spanish else MONEY_EN)}  # fmt: skip
        text = rng.choice(TEMPLATES_ES if spanish else TEMPLATES_EN).format(**facts)
        docs.append((text, {(fold(v), t) for t, v in facts.items()}))
    return docs


def scores(predicted: list[set], gold: list[set]) -> dict:
    hit = sum(len(p & g) for p, g in zip(predicted, gold, strict=True))
    said, wanted = sum(map(len, predicted)), sum(map(len, gold))
    return {"precision": round(hit / said, 3) if said else None,
            "recall": round(hit / wanted, 3) if wanted else None, "entities": said}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--ctx", type=int, default=2048)
    args = parser.parse_args()
    model = resolve_model(Settings.from_env(), args.model)
    engine = load_engine(model.path, LoadOptions(n_ctx=args.ctx))
    raw_answers: list[dict] = []
    ground = Extractor._ground

    def keep_raw(self, answer, text, start, end):
        raw_answers.append(json.loads(json.dumps(answer)))
        return ground(self, answer, text, start, end)

    Extractor._ground = keep_raw
    docs = make_documents(args.docs)
    raw, final, gold = [], [], []
    invented = caught = fuzzy_not_in_text = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        ex = Extractor(engine, model.name, CallCache(Path(scratch) / "c", False),
                       ExtractOptions(entities=DEFAULT_ENTITIES), SilentProgress())  # fmt: skip
        for i, (text, truth) in enumerate(docs):
            path = Path(scratch) / f"doc{i}.txt"
            path.write_text(text, encoding="utf-8")
            before = len(raw_answers)
            result = ex.extract(open_document(str(path), Path(scratch)))
            said = [e for a in raw_answers[before:] for e in a.get("entities", [])]
            raw.append({(fold(e["text"]), e["type"]) for e in said})
            final.append({(fold(e["text"]), e["type"]) for e in result.data["entities"]})
            gold.append(truth)
            kept = {fold(e["text"]) for e in result.data["entities"]}
            for entity in said:
                if fold(entity["text"]) not in fold(text):
                    invented += 1
                    if fold(entity["text"]) in kept:
                        fuzzy_not_in_text += 1
                    else:
                        caught += 1
    report = {
        "bench": "extract_quality", "model": model.name, "documents": len(docs),
        "n_ctx": engine.n_ctx, "wall_s": round(time.perf_counter() - started, 1),
        "raw_answers": scores(raw, gold), "after_grounding": scores(final, gold),
        "invented_values": invented,
        "invented_caught_share": round(caught / invented, 3) if invented else None,
        "invented_passed_as_fuzzy": fuzzy_not_in_text,
    }  # fmt: skip
    engine.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
