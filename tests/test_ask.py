"""The document index and `ask`: lexical retrieval over Spanish and English files (text,
Markdown, HTML, a two-page PDF), updates that re-read only what changed, an index that
survives an interrupted add, not-found answers without a model call, and citations that
point at the text they quote.

What the starter model answers differs between CPUs; the tests assert what holds whatever
it writes: citations name passages it was given, and those passages are where their
offsets say."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_command, run_cli
from pdf_maker import write_pdf

from localllm.config import Settings
from localllm.documents.readers import open_document, pages
from localllm.index.asking import Asker
from localllm.index.citations import CitationCheck, CitationFilter
from localllm.index.indexing import Indexer, index_path
from localllm.index.passages import LONGEST, cut_passages
from localllm.index.search import Retriever, content_words
from localllm.index.store import DocumentIndex
from localllm.progress import SilentProgress

CORPUS = Path(__file__).parent / "data" / "ask"
OLIVE_PAGES = [
    "Informe del olivar de Jaén\n\nLa producción de aceite de oliva en la provincia de Jaén "
    "alcanzó 500.000 toneladas en la campaña de 2021, casi la mitad de la producción "
    "española.\n\nLa mayor parte del olivar es de secano y se recoge entre noviembre y enero.",
    "Exportación\n\nLa cooperativa Olivar de Segura exporta aceite virgen extra a Japón desde "
    "2009. Sus envíos salen por el puerto de Algeciras.\n\nEl aceite se envasa en botellas de "
    "vidrio oscuro para protegerlo de la luz.",
]
# (question, a string the passage that answers it holds): Spanish and English, some spelled
# without their accents, as people type them.
QUESTIONS = [
    ("¿En que año se fundo la Universidad de Salamanca?", "1218"),
    ("¿Cuánto mide el Teide?", "3.718 metros"),
    ("¿Cuando declaro la UNESCO patrimonio el paisaje cultural cafetero?", "2011"),
    ("produccion de aceite de oliva en Jaen", "500.000 toneladas"),
    ("¿A qué país exporta la cooperativa Olivar de Segura?", "Japón"),
    ("How long does a worker bee live in summer?", "six weeks"),
    ("When was the fourth Eddystone lighthouse completed?", "1882"),
    ("¿Que variedad de arroz se usa en la paella?", "bomba"),
    ("¿Quien fue rector de la universidad en 1900?", "Unamuno"),
    ("How do bees tell each other where the flowers are?", "waggle dance"),
]
ABSENT = "¿Quién ganó el mundial de fútbol de 2010?"


def corpus(folder: Path) -> Path:
    shutil.copytree(CORPUS, folder)
    write_pdf(folder / "olivar.pdf", OLIVE_PAGES)
    return folder


def build(tmp_path: Path, folder: Path | None = None) -> DocumentIndex:
    folder = folder or corpus(tmp_path / "docs")
    index = DocumentIndex(tmp_path / "index.sqlite")
    Indexer(index, SilentProgress(), tmp_path / "spool").add([str(folder)])
    return index


def test_lexical_retrieval_finds_the_passage_that_holds_each_fact(tmp_path):
    index = build(tmp_path)
    assert {Path(f.path).suffix for f in index.files()} == {".md", ".txt", ".html", ".pdf"}
    retriever = Retriever(index)
    found = []
    for question, fact in QUESTIONS:
        hits = retriever.search(question, k=5).hits
        found.append(any(fact in h.passage.text for h in hits))
    assert sum(found) >= 9, [q for (q, _), ok in zip(QUESTIONS, found, strict=True) if not ok]
    pdf_hits = retriever.search("cooperativa Olivar de Segura Japón", k=1).hits
    assert pdf_hits[0].passage.page == 2 and pdf_hits[0].passage.where.endswith("olivar.pdf:2")


def test_accents_are_folded_both_ways(tmp_path):
    index = build(tmp_path)
    retriever = Retriever(index)
    with_accents = retriever.search("producción Jaén", k=3).hits
    without = retriever.search("produccion Jaen", k=3).hits
    assert [h.passage.id for h in with_accents] == [h.passage.id for h in without]
    assert "Jaén" in with_accents[0].passage.text
    assert content_words(index.fold("¿Qué es la información?")) == ["informacion"]


def test_passages_are_where_their_offsets_say_and_keep_to_one_page(tmp_path):
    folder = corpus(tmp_path / "docs")
    for path in sorted(folder.iterdir()):
        by_page = pages(open_document(str(path), tmp_path / "spool"))
        text = "".join(t for _, t in by_page)
        passages = cut_passages(by_page)
        assert passages, path
        for p in passages:
            assert text[p.start : p.end] == p.text and len(p.text) <= LONGEST
            if p.page is not None:  # inside its own page
                page_start = sum(len(t) for _, t in by_page[: p.page - 1])
                assert page_start <= p.start and p.end <= page_start + len(by_page[p.page - 1][1])
    long = "Una frase larga sin final " * 200
    cut = cut_passages([(None, long)])
    assert len(cut) > 1 and all(len(p.text) <= LONGEST for p in cut)
    assert all(not p.text[-1].isalnum() or long[p.end] == " " for p in cut[:-1])  # whole words


def test_update_rereads_only_the_file_whose_content_changed(tmp_path):
    folder = corpus(tmp_path / "docs")
    index = build(tmp_path, folder)
    indexer = Indexer(index, SilentProgress(), tmp_path / "spool")
    changed, touched = folder / "bees.txt", folder / "paella.txt"
    changed.write_text(changed.read_text() + "\nA queen can lay two thousand eggs a day.\n")
    os.utime(touched)  # a newer time, the same content
    (folder / "cafe.txt").unlink()
    report = indexer.update()
    assert report.updated == [str(changed.resolve())]
    assert str(touched.resolve()) in report.unchanged
    assert report.removed == [str((folder / "cafe.txt").resolve())]
    hits = Retriever(index).search("How many eggs does a queen lay?", k=1).hits
    assert "two thousand eggs" in hits[0].passage.text
    gone = Retriever(index).search("Paisaje Cultural Cafetero UNESCO", k=5).hits
    assert all(not h.passage.path.endswith("cafe.txt") for h in gone)
    assert index.check() == []


def _indexed_files(path: Path) -> int:
    with sqlite3.connect(path, timeout=30) as db:
        try:
            return db.execute("SELECT count(*) FROM files").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            return 0


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_add_leaves_every_file_whole_or_absent(tmp_path, how):
    folder = tmp_path / "many"
    folder.mkdir()
    paragraph = "Párrafo {i} del documento {n}: texto de relleno para el índice. " * 6
    for n in range(400):
        (folder / f"doc{n:03}.txt").write_text(
            "\n\n".join(paragraph.format(i=i, n=n) for i in range(40)), encoding="utf-8"
        )
    home = tmp_path / "home"
    path = index_path(Settings.from_env({"LOCALLLM_HOME": str(home)}), "default")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOCALLLM_")},
           "LOCALLLM_HOME": str(home)}  # fmt: skip
    proc = subprocess.Popen([*cli_command(), "index", "add", str(folder)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (path.exists() and _indexed_files(path) >= 3) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if how == signal.SIGINT:
        assert "interrupted" in err and "Traceback" not in err
    index = DocumentIndex(path)
    assert index.check() == []
    files = index.files()
    assert 3 <= len(files) < 400
    for f in files:  # every file indexed is there in whole
        expected = cut_passages(pages(open_document(f.path, tmp_path / "spool")))
        assert f.passages == len(expected)
    index.close()
    rerun = run_cli("index", "add", str(folder), "--json", home=home)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert len(report["unchanged"]) == len(files) and len(report["added"]) == 400 - len(files)


def test_index_commands_list_rm_and_their_errors(tmp_path):
    folder = corpus(tmp_path / "docs")
    home = tmp_path / "home"
    added = run_cli("index", "add", str(folder), "--index", "notas", home=home)
    assert added.returncode == 0, added.stderr
    assert "7 added" in added.stdout and "pages/s" in added.stdout
    listed = json.loads(run_cli("index", "list", "--index", "notas", "--json", home=home).stdout)
    assert len(listed) == 7 and {f["pages"] for f in listed} == {None, 2}
    removed = run_cli("index", "rm", str(folder / "bees.txt"), "--index", "notas", home=home)
    assert removed.returncode == 0 and "bees.txt" in removed.stdout
    assert len(json.loads(run_cli("index", "list", "--index", "notas", "--json",
                                  home=home).stdout)) == 6  # fmt: skip
    for args, says in [
        (("index", "list", "--index", "nada"), "no index called 'nada'"),
        (("index", "add", str(folder), "--index", "../fuera"), "not an index name"),
        (("index", "rm", str(folder / "nope.txt"), "--index", "notas"), "not in the index"),
        (("ask", "¿Qué?", "--in", "nada"), "nothing to search"),
    ]:
        proc = run_cli(*args, home=home)
        assert proc.returncode == 1 and says in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (home / "data" / "fuera.sqlite").exists()


def test_a_question_about_something_absent_is_answered_without_the_model(tmp_path):
    index = build(tmp_path)

    def no_model():
        raise AssertionError("the model was called for a question the documents do not cover")

    answer = Asker(Retriever(index), no_model).ask(ABSENT)
    assert not answer.found and answer.language == "es"
    assert answer.text.startswith("Los documentos no lo dicen")
    english = Asker(Retriever(index), no_model).ask("Who won the 2010 football world cup?")
    assert not english.found and english.text.startswith("The documents do not say")
    assert Retriever(index).search(QUESTIONS[0][0]).relevant  # and a covered one is relevant


def test_citations_are_checked_as_they_stream():
    check = CitationCheck(passages=3)
    stream = CitationFilter(check)
    pieces = ["Fue en 1218 [", "1]. Lo fundó Alfonso IX [2, 7]", " y nada más [9", "]."]
    text = "".join(stream.feed(p) for p in pieces) + stream.finish()
    assert text == "Fue en 1218 [1]. Lo fundó Alfonso IX [2] y nada más ."
    assert check.cited == [1, 2] and check.removed == [7, 9]
    ranged = CitationCheck(passages=3)
    stream = CitationFilter(ranged)
    pieces = ["a [1, 2, 3, 4, 5, 6, ", "7, 8, 9] b [1-3] c [2–9] d"]  # long, and ranges
    text = "".join(stream.feed(p) for p in pieces) + stream.finish()
    assert text == "a [1][2][3] b [1][2][3] c [2][3] d" and ranged.cited == [1, 2, 3]
    unclosed = CitationFilter(CitationCheck(passages=2))
    assert unclosed.feed("lista [a] y [1") + unclosed.finish() == "lista [a] y [1"


@pytest.mark.one_build  # offsets, citation numbers and counts: the pipeline's, on any kernels
def test_ask_answers_with_citations_that_point_at_their_passages(tmp_path, starter_home):
    home = tmp_path / "home"
    shutil.copytree(starter_home, home)
    folder = corpus(tmp_path / "docs")
    assert run_cli("index", "add", str(folder), home=home).returncode == 0
    proc = run_cli("ask", QUESTIONS[0][0], "--json", "--ctx", "2048", home=home)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["found"] and out["language"] == "es" and out["stats"]["calls"] == 1
    assert any("1218" in p["quote"] for p in out["passages"])
    for p in out["passages"] + out["citations"]:
        text = "".join(t for _, t in pages(open_document(p["path"], tmp_path / "spool")))
        assert text[p["start"] : p["end"]] == p["quote"]
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", out["answer"])}
    assert numbers <= set(range(1, len(out["passages"]) + 1))  # no citation of nothing
    assert out["flagged"] == (not out["citations"])
    absent = run_cli("ask", ABSENT, "--json", home=home)
    assert absent.returncode == 0 and json.loads(absent.stdout)["found"] is False
    assert json.loads(absent.stdout)["stats"] == {}
    shown = run_cli("ask", QUESTIONS[5][0], "--in", str(folder / "bees.txt"), home=home)
    assert shown.returncode == 0 and "bees.txt" in shown.stdout, shown.stderr


def test_dense_retrieval_mechanics_with_a_gguf_in_embedding_mode(tmp_path, starter_path):
    from localllm.engine.embed import EmbeddingEngine

    engine = EmbeddingEngine.load(starter_path)
    try:
        vectors, _ = engine.embed(["La Universidad de Salamanca", "A worker bee"])
        again, _ = engine.embed(["La Universidad de Salamanca"])
        matrix = np.asarray(vectors)
        assert matrix.shape == (2, engine.dimensions)
        assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)
        assert np.allclose(matrix[0], again[0], atol=1e-5)  # deterministic

        def embed(texts):
            return np.asarray(engine.embed(texts)[0], dtype=np.float32)

        folder = corpus(tmp_path / "docs")
        index = DocumentIndex(tmp_path / "index.sqlite")
        Indexer(index, SilentProgress(), tmp_path / "spool", embed).add([str(folder)])
        ids, stored = index.vectors()
        assert len(ids) == index.passage_count() and stored.shape[1] == engine.dimensions
        passage = index.passages([int(ids[0])])[int(ids[0])]
        dense = Retriever(index, embed).search(passage.text, k=3, mode="dense")
        assert dense.hits[0].passage.id == passage.id  # a passage is nearest to itself
        assert dense.hits[0].cosine == pytest.approx(1.0, abs=1e-3)
        hybrid = Retriever(index, embed).search(QUESTIONS[0][0], k=5)
        assert hybrid.mode == "hybrid" and any("1218" in h.passage.text for h in hybrid.hits)
    finally:
        engine.close()


@pytest.mark.one_build  # which model answers, not what it computes
def test_the_server_embeds_with_the_configured_model_when_a_request_names_none(
        tmp_path, starter_home):  # fmt: skip
    import httpx
    from serverproc import running_server

    home = tmp_path / "home"
    shutil.copytree(starter_home, home)
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "config.toml").write_text('[index]\nembedding_model = "smollm2-135m"\n')
    with running_server(home, "--parallel", "1") as url:
        reply = httpx.post(url + "/v1/embeddings", json={"input": ["hola"]}, timeout=120)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["model"].startswith("smollm2-135m") and len(body["data"][0]["embedding"]) > 0
