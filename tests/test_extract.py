"""Extraction on the real starter model: always valid under the grammar, merged across parts,
grounded in the source with offsets, invented values dropped and counted.

What the starter model extracts differs between CPUs; these tests assert what holds
whatever it writes: every answer validates, every kept value is where its offsets say,
and every value is counted once as found or invented."""

from __future__ import annotations

import json
import shutil

import jsonschema
import pytest
from conftest import run_cli

from localllm.documents.cache import CallCache
from localllm.documents.readers import open_document
from localllm.errors import GrammarError
from localllm.extract.grounding import FoldedText, find, fold
from localllm.extract.merge import Found, PartResult, merge
from localllm.extract.pipeline import ExtractOptions, Extractor
from localllm.extract.schema import DEFAULT_ENTITIES, load_schema, relaxed
from localllm.progress import SilentProgress

NEWS = (
    "El 14 de marzo de 2025, la empresa Telefónica firmó un acuerdo con el Ayuntamiento de "
    "Sevilla por 2,5 millones de euros. María González, directora de innovación, presentó el "
    "proyecto en Madrid.\n\nSegún Juan Pérez, portavoz del ayuntamiento, las obras empezarán "
    "en Triana el 1 de junio de 2025."
)
DOCUMENTS = [
    NEWS,
    "Marie Curie was born in Warsaw in 1867 and moved to Paris, where she studied at the "
    "Sorbonne. She won the Nobel Prize in Physics in 1903.",
    "Invoice 2024-117 from Acme Tools Ltd, 12 High Street, Leeds. Total due: 1,250.00 GBP by "
    "30 April 2024. Contact: Sarah Jones, sarah.jones@acme.example.",
    "La Universidad de Salamanca, fundada en 1218, es la más antigua de España. Miguel de "
    "Unamuno fue su rector en 1900.",
    "On 3 May 2023 the city of Lyon signed a contract with Alstom worth 40 million euros for "
    "new trams, according to mayor Grégory Doucet.",
]
SCHEMAS = {
    "people": {"type": "object", "properties": {"people": {"type": "array", "maxItems": 4,
               "items": {"type": "string", "maxLength": 40}}}, "required": ["people"]},
    "place_and_year": {"type": "object", "properties": {
        "place": {"type": "string", "maxLength": 40}, "year": {"type": "integer"}},
        "required": ["place", "year"]},
    "organisation": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 50},
        "kind": {"enum": ["company", "public body", "university", "other"]}},
        "required": ["name", "kind"]},
    "events": {"type": "object", "properties": {"events": {"type": "array", "maxItems": 3,
               "items": {"type": "object", "properties": {
                   "what": {"type": "string", "maxLength": 40},
                   "when": {"type": "string", "maxLength": 30}},
                   "required": ["what", "when"]}}}, "required": ["events"]},
    "flags": {"type": "object", "properties": {"mentions_money": {"type": "boolean"},
              "language": {"enum": ["es", "en", "other"]}},
              "required": ["mentions_money", "language"]},
    "contact": {"type": "object", "properties": {
        "person": {"type": "string", "maxLength": 40},
        "city": {"type": "string", "maxLength": 30},
        "amount": {"type": "number"}}, "required": ["person"]},
}  # fmt: skip


def extractor(engine, tmp_path, schema=None, entities=DEFAULT_ENTITIES) -> Extractor:
    options = ExtractOptions(entities=entities, schema=schema)
    return Extractor(engine, "starter", CallCache(tmp_path / "cache"), options, SilentProgress())


def document(tmp_path, text: str, name: str = "doc.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return open_document(str(path), tmp_path / "spool")


def at_pointer(data, pointer: str):
    for key in pointer.split("/")[1:]:
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data


def assert_offsets_point_at_values(text: str, data: dict, found: list[dict]) -> None:
    """Each found value's offsets hold the extracted value: the same once folded, or (fuzzy)
    like it; and the value reported is the source's own spelling."""
    from difflib import SequenceMatcher

    for f in found:
        at, extracted = text[f["start"] : f["end"]], at_pointer(data, f["path"])
        assert at == f["value"]
        if f["match"] == "fuzzy":
            assert SequenceMatcher(None, fold(at), fold(extracted)).ratio() >= 0.8
        else:
            assert fold(at) == fold(extracted)


# -- without a model -------------------------------------------------------------------------


def test_grounding_finds_exact_then_folded_then_fuzzy_and_nothing_invented():
    source = FoldedText("Según  Juan Pérez, el Ayuntamiento de Sevilla pagó 2,5 millones.")
    exact = find("Juan Pérez", source)
    assert (exact.how, source.text[exact.start : exact.end]) == ("exact", "Juan Pérez")
    folded = find("juan perez", source)
    assert folded.how == "folded" and source.text[folded.start : folded.end] == "Juan Pérez"
    spaced = find("Según Juan", source)  # a run of spaces in the source is one space
    assert spaced.how == "folded" and source.text[spaced.start : spaced.end] == "Según  Juan"
    fuzzy = find("Ayuntamiento de Sevila", source)
    assert fuzzy.how == "fuzzy" and fuzzy.score >= 0.85
    assert source.text[fuzzy.start : fuzzy.end].startswith("Ayuntamiento de Sevill")
    assert find("Napoleón Bonaparte", source) is None and find("", source) is None


def test_merge_concatenates_lists_keeps_the_first_scalar_and_reports_conflicts():
    parts = [
        PartResult({"people": ["Ana", "Luis"], "city": "Sevilla", "total": None},
                   [Found("/people/1", "Luis", 10, 14, "exact"),
                    Found("/city", "Sevilla", 20, 27, "exact")]),
        PartResult({"people": ["Luis", "Marta"], "city": "Cádiz", "total": 3},
                   [Found("/people/0", "Luis", 110, 114, "exact"),
                    Found("/people/1", "Marta", 120, 125, "folded")]),
    ]  # fmt: skip
    merged = merge(parts)
    assert merged.data == {"people": ["Ana", "Luis", "Marta"], "city": "Sevilla", "total": 3}
    places = {(f.path, f.start) for f in merged.found}
    assert {("/people/1", 10), ("/people/1", 110), ("/people/2", 120), ("/city", 20)} == places
    assert merged.conflicts == [{"path": "/city", "kept": "Sevilla", "other_values": ["Cádiz"]}]


def test_a_users_schema_is_checked_and_relaxed_for_extraction(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"type": "object", "properties": {
        "n": {"type": "integer", "minimum": 0}}}))  # fmt: skip
    with pytest.raises(GrammarError, match="'minimum'"):
        load_schema(path)
    path.write_text('{"type": "array"}')
    with pytest.raises(GrammarError, match="must describe an object"):
        load_schema(path)
    path.write_text("{not json")
    with pytest.raises(GrammarError, match="is not JSON"):
        load_schema(path)
    loose = relaxed(SCHEMAS["people"] | {"properties": {"people": {
        "type": "array", "minItems": 2, "items": {"type": "string"}}}})  # fmt: skip
    jsonschema.validate({"people": [None]}, loose)  # a string may be null, no minimum count
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"people": [3]}, loose)


# -- on the real model -------------------------------------------------------------------------


def test_invented_values_are_dropped_counted_and_the_rest_keep_their_offsets(engine_512,
                                                                             tmp_path):  # fmt: skip
    ex = extractor(engine_512, tmp_path, schema=SCHEMAS["people"])
    text = "Intro.\n\n" + NEWS
    start = text.index("El 14")
    answer = {"people": ["María González", "Napoleón Bonaparte", "juan perez"]}
    part = ex._ground(answer, text, start, len(text))
    assert part.data == {"people": ["María González", "juan perez"]}
    assert ex.counts["invented"] == 1 and ex.counts["exact"] == 1 and ex.counts["folded"] == 1
    spans = {f.path: text[f.start : f.end] for f in part.found}
    assert spans == {"/people/0": "María González", "/people/1": "Juan Pérez"}


@pytest.mark.one_build  # validity comes from the grammar, whatever the kernels pick
def test_every_answer_over_thirty_runs_and_six_schemas_validates(engine_512, tmp_path):
    runs = 0
    for name, schema in SCHEMAS.items():
        cache = tmp_path / name
        ex = Extractor(engine_512, "starter", CallCache(cache), ExtractOptions(schema=schema),
                       SilentProgress())  # fmt: skip
        for i, text in enumerate(DOCUMENTS):
            result = ex.extract(document(tmp_path, text, f"{name}-{i}.txt"))
            runs += 1
            jsonschema.validate(result.data, ex.schema)  # the merged result, too
            assert_offsets_point_at_values(text, result.data, result.found)
            st = result.stats
            assert st["values"] == (st["exact"] + st["folded"] + st["fuzzy"] + st["invented"]
                                    + st["unchecked"])  # fmt: skip
        answers = [json.loads(json.loads(p.read_text())["summary"]) for p in cache.rglob("*.json")]
        for stored in answers:  # every answer the model gave, before grounding
            assert stored["cut"] or jsonschema.validate(stored["answer"], ex.schema) is None
    assert runs >= 30


@pytest.mark.one_build  # parts and merging are the pipeline's, on any kernels
def test_a_document_longer_than_the_window_is_done_in_parts_and_merged(engine_512, tmp_path):
    text = "\n\n".join(DOCUMENTS * 3)
    ex = extractor(engine_512, tmp_path)
    result = ex.extract(document(tmp_path, text))
    # a part whose text repeats an earlier one reuses its cached answer
    st = result.stats
    assert st["parts"] >= 3 and st["calls"] + st["cached"] >= st["parts"] and st["calls"] >= 1
    keys = [(fold(e["text"]), e["type"]) for e in result.data["entities"]]
    assert len(keys) == len(set(keys))  # one entry per entity, however many parts named it
    for entity in result.data["entities"]:
        assert entity["type"] in DEFAULT_ENTITIES and entity["mentions"]
        for m in entity["mentions"]:
            assert m["match"] == "fuzzy" or fold(text[m["start"] : m["end"]]) == fold(
                entity["text"])  # fmt: skip
    firsts = [e["mentions"][0]["start"] for e in result.data["entities"]]
    assert firsts == sorted(firsts)  # in the order the document names them


@pytest.mark.one_build  # output formats and errors, whatever the model extracts
def test_cli_writes_csv_and_jsonl_and_refuses_bad_schemas(tmp_path, starter_home):
    home = tmp_path / "home"
    shutil.copytree(starter_home, home)
    source = tmp_path / "news.txt"
    source.write_text(NEWS, encoding="utf-8")
    out = tmp_path / "entities.csv"
    proc = run_cli("extract", str(source), "--csv", "-o", str(out), "--ctx", "1024", home=home)
    assert proc.returncode == 0, proc.stderr
    header, *rows = out.read_text(encoding="utf-8").splitlines()
    assert header == "document,type,text,start,end,mentions"
    assert all(row.startswith(f"{source},") for row in rows)
    proc = run_cli("extract", "-", "--jsonl", "--entities", "person,place", "--ctx", "1024",
                   stdin=NEWS, home=home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.splitlines()
    record = json.loads(line)
    assert record["document"] == "stdin"
    assert {e["type"] for e in record["entities"]} <= {"person", "place"}
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "object", "properties": {"n": {"type": "number", "maximum": 3}}}')
    proc = run_cli("extract", str(source), "--schema", str(bad), home=home)
    assert proc.returncode == 1 and "'maximum'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
