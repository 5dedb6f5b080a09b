"""Translation of whole documents on the real starter model: structure kept byte for byte,
every call within the window, retries, resume, every reader, bad input.

The starter model translates badly and differently on each CPU; these tests assert what the
pipeline guarantees whatever it writes: what must not change does not, nothing is dropped,
and what failed a check is kept in the source language and reported."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import RecordingEngine, run_cli
from test_summarize import make_pdf

from localllm.documents.cache import CallCache
from localllm.documents.readers import open_document
from localllm.errors import DocumentError
from localllm.progress import SilentProgress
from localllm.translate.glossary import Glossary, load_glossary
from localllm.translate.layout import html_layout, markdown_layout
from localllm.translate.pipeline import TranslateOptions, Translator
from localllm.translate.protect import marker_problem, mask, unmask

CODE = '```python\nprint("hola, mundo")  # 42\n```\n'
URL = "https://example.org/informe-2024?lang=es"
MARKDOWN = f"""# Informe anual del ayuntamiento

El ayuntamiento publicó el **informe** el 3 de marzo de 2024. Visite {URL} para leer más.

- Primer punto: las calles nuevas con `codigo_postal`
- Segundo punto: ver [la guía]({URL} "Guía") del proyecto

| Ciudad | Población |
|--------|-----------|
| Sevilla | 684.234 |

{CODE}
Fin del informe. Gracias por leerlo con atención.
"""
TABLE_RULE = "|--------|-----------|\n"
SEVILLA = (
    "La ciudad de Sevilla es la capital de Andalucía, en el sur de España. Su catedral es una "
    "de las más grandes del mundo y guarda la tumba de Cristóbal Colón. El río Guadalquivir "
    "atraviesa la ciudad y durante siglos fue el puerto principal del comercio con América."
)


def paragraphs(text: str) -> int:
    return len([p for p in re.split(r"\n[ \t]*\n", text) if p.strip()])


def translator(engine, tmp_path, cache=True, **options) -> Translator:
    options.setdefault("tries", 1)
    return Translator(engine, "starter", CallCache(tmp_path / "cache", cache),
                      TranslateOptions(**options), SilentProgress())  # fmt: skip


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text, encoding="utf-8")
    return path


# -- without a model: the layout and the markers ------------------------------------------------


def test_markdown_layout_renders_back_byte_for_byte_and_keeps_markup_fixed():
    layout = markdown_layout(MARKDOWN)
    assert layout.render([s.text for s in layout.segments]) == MARKDOWN
    texts = [s.text for s in layout.segments]
    assert "Informe anual del ayuntamiento" in texts  # the heading's text, not its '#'
    assert not any(t.startswith(("#", "- ", "|")) or "print(" in t for t in texts)
    rendered = layout.render(["X" for _ in layout.segments])
    assert rendered.startswith("# X\n\nX\n\n- X\n- X\n\n| X | X |\n" + TABLE_RULE)
    assert CODE in rendered and paragraphs(rendered) == paragraphs(MARKDOWN)


def test_html_layout_keeps_every_tag_and_translates_visible_text_only():
    page = ("<html><head><title>Hola</title><style>p{color:red}</style></head><body>"
            "<h1>Título</h1><p>Un <b>texto</b> con &amp; un <a href='/x'>enlace</a>.</p>"
            "<pre>no tocar</pre><script>var s = 'no';</script></body></html>")  # fmt: skip
    layout = html_layout(page)
    assert layout.render([s.text for s in layout.segments]) == page
    texts = [s.text for s in layout.segments]
    assert texts[:2] == ["Hola", "Título"] and "no tocar" not in " ".join(texts)
    masked = mask(texts[2])
    assert "<b>" not in masked.text and "&amp;" not in masked.text
    assert unmask(masked, masked.text) == texts[2]


def test_markers_must_all_come_back_once():
    masked = mask(f"Pague 25,50 € antes del 3/4/2026 en {URL} o con `pagar()`.")
    assert len(masked.originals) == 4 and URL in masked.originals
    assert marker_problem(masked, masked.text) is None
    lost = masked.text.replace("\u27e62\u27e7", "")
    assert "lost 1" in marker_problem(masked, lost) and URL in marker_problem(masked, lost)
    assert marker_problem(masked, masked.text + " \u27e60\u27e7") is not None


def test_glossaries_load_from_tsv_and_toml_with_clear_errors(tmp_path):
    tsv = load_glossary(write(tmp_path, "g.tsv", "# terms\nayuntamiento\tcity council\n"))
    toml = load_glossary(write(tmp_path, "g.toml", '[terms]\n"ayuntamiento" = "city council"\n'))
    assert tsv == toml == Glossary((("ayuntamiento", "city council"),))
    assert tsv.relevant("El Ayuntamiento abrió.") and not tsv.relevant("Los ayuntamientos.")
    assert tsv.broken("El ayuntamiento", "The town hall")
    assert not tsv.broken("El ayuntamiento", "The City Council")
    with pytest.raises(DocumentError, match=r"g2.tsv:1: expected"):
        load_glossary(write(tmp_path, "g2.tsv", "one\ttwo\tthree\n"))
    with pytest.raises(DocumentError, match="no entries"):
        load_glossary(write(tmp_path, "g3.tsv", "# nothing\n"))


# -- on the real model -------------------------------------------------------------------------


@pytest.mark.one_build  # what stays fixed is the layout's, never the model's
def test_markdown_structure_survives_translation_byte_for_byte(tmp_path, starter_home):
    home = tmp_path / "home"
    shutil.copytree(starter_home, home)
    source = write(tmp_path, "informe.md", MARKDOWN)
    out = tmp_path / "report.md"
    proc = run_cli("translate", str(source), "--to", "en", "--tries", "1", "--ctx", "1024",
                   "-o", str(out), "--json", home=home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert CODE in text and TABLE_RULE in text and URL in text
    assert paragraphs(text) == paragraphs(MARKDOWN)
    lines = text.splitlines()
    assert lines[0].startswith("# ") and sum(line.startswith("- ") for line in lines) == 2
    assert [line.count("|") for line in lines if line.startswith("|")] == [3, 3, 3]
    report = json.loads(proc.stdout)
    assert report["from"] == "es" and report["to"] == "en" and report["translation"] == text
    # Whatever was not translated is said, on stderr and in the report, never dropped.
    for kept in report["untranslated"]:
        assert kept["text"][:40] in MARKDOWN and kept["reason"]
        assert f"paragraph {kept['paragraph']} kept" in proc.stderr


WORDS = ("agua", "barco", "campo", "dedo", "estrella", "fuego", "gato", "hierro", "isla", "jardín",
         "lago", "luna", "mar", "nube", "olivo", "pan", "queso", "río", "sal", "torre")  # fmt: skip


def varied(n: int) -> str:
    """n paragraphs that differ in their words, not only in their (protected) numbers."""
    return "\n\n".join(f"Capítulo del {WORDS[i % 20]} y {WORDS[(i * 7 + 3) % 20]}: {SEVILLA}"
                       for i in range(n))  # fmt: skip


@pytest.mark.one_build  # window arithmetic on the tokenizer: the same on every kernel set
def test_a_long_document_takes_several_chunks_each_within_the_window(engine_1k, tmp_path):
    doc = open_document(str(write(tmp_path, "largo.txt", varied(30))), tmp_path)
    recording = RecordingEngine(engine_1k)
    tr = translator(recording, tmp_path, target="en", source="es")
    result = tr.translate(doc)
    assert result.stats["source_tokens"] > 2800
    assert all(len(prompt) + reserve <= 1024 for prompt, reserve in recording.calls)
    chunks = [r for r in tr.calls.records if r.kind == "chunk"]
    assert len(chunks) >= result.stats["source_tokens"] // result.stats["chunk_tokens"] - 1
    assert paragraphs(result.text) == 30
    for i in range(30):  # every paragraph is there, translated or kept and reported
        assert WORDS[i % 20] in result.text or i + 1 not in [
            u["paragraph"] for u in result.untranslated
        ]


def test_the_next_chunk_sees_the_end_of_the_last_one_within_its_budget(engine_1k, tmp_path):
    from localllm.translate.planning import Unit

    units = [Unit(i, i, f"fuente {i}", mask(f"fuente {i}"), 40, f"source {i}") for i in range(5)]
    units[4].translation = None  # failed: not context for the next chunk
    source, translation = translator(engine_1k, tmp_path, target="en")._context(units, 170)
    assert source == "fuente 2\n\nfuente 3" and translation == "source 2\n\nsource 3"


def test_a_broken_glossary_entry_is_retried_then_reported(engine_1k, tmp_path):
    doc = open_document(str(write(tmp_path, "s.txt", SEVILLA)), tmp_path)
    glossary = Glossary((("catedral", "Zqxwv-Kathedrale"),))  # no model writes this unasked
    recording = RecordingEngine(engine_1k)
    result = translator(recording, tmp_path, target="en", source="es", tries=2,
                        glossary=glossary).translate(doc)  # fmt: skip
    system = recording.detokenize(recording.calls[0][0])
    assert "catedral \u2192 Zqxwv-Kathedrale" in system  # the entry was given to the model
    if "Zqxwv-Kathedrale" not in result.text:
        [kept] = result.untranslated
        assert kept["tries"] == 2 and kept["reason"]
        assert SEVILLA in result.text  # kept in the source language, not dropped
    assert len(recording.calls) == result.stats["calls"] >= 2


def test_an_interrupted_translation_resumes_from_its_cache(engine_1k, tmp_path):
    doc = open_document(str(write(tmp_path, "largo.txt", varied(6))), tmp_path)

    class StopAfterTwoChunks(SilentProgress):
        done = 0

        def advance(self, amount):
            self.done += 1
            if self.done == 2:
                raise KeyboardInterrupt

    interrupted = translator(RecordingEngine(engine_1k), tmp_path, target="en", source="es")
    interrupted.progress = StopAfterTwoChunks()
    with pytest.raises(KeyboardInterrupt):
        interrupted.translate(doc)
    stored = len(list((tmp_path / "cache").rglob("*.json")))
    assert stored == len(interrupted.calls.records) > 0
    resumed = translator(RecordingEngine(engine_1k), tmp_path, target="en", source="es")
    result = resumed.translate(doc)
    # Every answer stored before the interruption was reused: only the rest was asked.
    assert len(list((tmp_path / "cache").rglob("*.json"))) == stored + result.stats["calls"]
    again = translator(RecordingEngine(engine_1k), tmp_path, target="en", source="es")
    assert again.translate(doc).text == result.text and again.calls.records == []


@pytest.mark.parametrize("kind", ["txt", "html", "pdf", "stdin"])
def test_every_reader_format_translates(kind, engine_1k, tmp_path):
    if kind == "html":
        page = f"<html><body><h1>Sevilla</h1><p>{SEVILLA}</p><pre>x = 1</pre></body></html>"
        doc = open_document(str(write(tmp_path, "s.html", page)), tmp_path)
    elif kind == "pdf":
        make_pdf(tmp_path / "s.pdf", "La ciudad de Sevilla es la capital de Andalucia.")
        doc = open_document(str(tmp_path / "s.pdf"), tmp_path)
    elif kind == "stdin":
        import io
        import sys

        stdin, sys.stdin = sys.stdin, io.TextIOWrapper(io.BytesIO(SEVILLA.encode()))
        try:
            doc = open_document("-", tmp_path)
        finally:
            sys.stdin = stdin
    else:
        doc = open_document(str(write(tmp_path, "s.txt", SEVILLA)), tmp_path)
    result = translator(engine_1k, tmp_path, target="en", source="es").translate(doc)
    assert result.text.strip() and result.stats["calls"] >= 1
    if kind == "html":
        tags = re.findall(r"<[^>]+>", result.text)
        assert tags == re.findall(r"<[^>]+>", page) and "<pre>x = 1</pre>" in result.text


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--to", "en"], bytes(range(256)) * 10, "binary"),
        (["--to", "en"], b"", "empty"),
        (["--to", "xx"], SEVILLA.encode(), "unknown language code 'xx'"),
        (["--to", "es", "--from", "es"], SEVILLA.encode(), "already in es"),
        (["--to", "en", "--glossary", "missing.tsv"], SEVILLA.encode(), "cannot read the glossary"),
    ],
    ids=["binary", "empty", "unknown-language", "same-language", "missing-glossary"],
)
def test_bad_input_is_a_one_line_error(tmp_path, starter_home, args, content, message):
    home = tmp_path / "home"
    shutil.copytree(starter_home, home)
    source = write(tmp_path, "input.txt", content)
    out = tmp_path / "out.txt"
    args = [a if a != "missing.tsv" else str(tmp_path / a) for a in args]
    proc = run_cli("translate", str(source), *args, "-o", str(out), home=home)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists()  # nothing half-written


def test_parallel_runs_are_consecutive_chunks_of_near_equal_length():
    from localllm.translate.planning import runs_of as _runs

    chunks = [[i] for i in range(7)]
    assert _runs(chunks, 3) == [[[0], [1], [2]], [[3], [4]], [[5], [6]]]
    assert _runs(chunks, 1) == [chunks] and _runs(chunks[:2], 8) == [[[0]], [[1]]]


def test_side_by_side_runs_translate_every_paragraph_within_the_window(engine_1k, tmp_path):
    doc = open_document(str(write(tmp_path, "largo.txt", varied(6))), tmp_path)
    recording = RecordingEngine(engine_1k)
    result = translator(recording, tmp_path, target="en", source="es", parallel=2).translate(doc)
    assert paragraphs(result.text) == 6 and result.stats["calls"] == len(recording.calls)
    assert all(len(prompt) + reserve <= 1024 for prompt, reserve in recording.calls)
