"""The green-list watermark on the real starter model: marked text is found, unmarked, human
and wrong-key text is not, edits do not wash it out, and the key stays secret.

What the starter model writes changes with the CPU; what these tests assert are
distributions over several prompts with margins (median z), never a given answer."""

from __future__ import annotations

import importlib
import inspect
import json
import random
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from localllm.engine import SamplingParams, Token, watermark
from localllm.engine.grammar import schema_to_grammar
from localllm.engine.watermark import WatermarkSpec, score
from localllm.watermarking import THRESHOLD_Z, detect, normalise

KEY = WatermarkSpec(b"a test key that is long enough")
OTHER_KEY = WatermarkSpec(b"some other key, just as long")
PROMPTS = [
    "Write a long story about a dragon.",
    "Explain how bicycles work, in detail.",
    "Describe a day at the beach.",
    "Write an essay about the history of bread.",
    "Tell me about the planets of the solar system.",
]
FILLER = [
    "the",
    "of",
    "and",
    "house",
    "river",
    "green",
    "small",
    "quickly",
    "under",
    "letter",
    "window",
    "table",
    "music",
]


def generate(engine, prompt: str, mark, seed: int, **extra) -> str:
    tokens = engine.chat_tokens([{"role": "user", "content": prompt}])
    extra.setdefault("temperature", 0.7)
    extra.setdefault("max_tokens", 200)
    params = SamplingParams(seed=seed, watermark=mark, **extra)
    return "".join(e.text for e in engine.stream(tokens, params) if isinstance(e, Token))


@pytest.fixture(scope="module")
def answers(engine):
    """Each prompt answered with and without the watermark (same seed), long enough that at
    least 200 tokens are scored once a fifth of the words are edited."""
    return [(generate(engine, p, KEY, i, max_tokens=260), generate(engine, p, None, i))
            for i, p in enumerate(PROMPTS)]  # fmt: skip


def z(engine, text: str, spec=KEY) -> float:
    return detect(spec, engine, "starter", text).z


def human_passages() -> tuple[list[str], list[str]]:
    """Text no model wrote under our key: the standard library's docstrings (English) and
    passages written for these tests (Spanish)."""
    english = []
    for name in (
        "os",
        "json",
        "re",
        "pathlib",
        "argparse",
        "collections",
        "subprocess",
        "threading",
        "logging",
        "unittest",
        "asyncio",
        "typing",
        "inspect",
        "functools",
        "tarfile",
        "zipfile",
        "csv",
        "decimal",
        "datetime",
        "random",
    ):
        for _, obj in inspect.getmembers(importlib.import_module(name)):
            doc = inspect.getdoc(obj)
            if doc and len(doc.split()) >= 60:
                english.append(doc)
    spanish = (Path(__file__).parent / "data" / "pasajes_es.txt").read_text(encoding="utf-8")
    return list(dict.fromkeys(english)), [p for p in spanish.split("\n\n") if p.strip()]


def test_marked_answers_score_high_and_unmarked_ones_do_not(engine, answers):
    marked = [z(engine, m) for m, _ in answers]
    plain = [z(engine, u) for _, u in answers]
    assert statistics.median(marked) >= THRESHOLD_Z + 1  # a margin over the threshold
    assert statistics.median(plain) < 2 and max(plain) < THRESHOLD_Z
    assert min(m - u for m, u in zip(marked, plain, strict=True)) > 1


def test_a_wrong_key_scores_like_unmarked_text(engine, answers):
    assert statistics.median(z(engine, m, OTHER_KEY) for m, _ in answers) < 2


def test_a_fifth_of_the_words_replaced_still_scores_above_the_threshold(engine, answers):
    rng = random.Random(0)
    edited = []
    for marked, _ in answers:
        words = marked.split()
        for i in range(0, len(words), 5):
            words[i] = rng.choice(FILLER)
        edited.append(z(engine, " ".join(words)))
    assert statistics.median(edited) >= THRESHOLD_Z


def test_pasted_text_is_normalised_before_scoring(engine, answers):
    marked = answers[0][0]
    pasted = "\ufeff" + marked.replace("\n", "\r\n").replace(" ", "\u00a0", 3) + "   \r\n"
    assert normalise(pasted) == normalise(marked)
    assert z(engine, pasted) == z(engine, marked)


def test_human_text_in_english_and_spanish_stays_below_the_threshold(engine):
    english, spanish = human_passages()
    assert len(english) >= 100 and len(spanish) >= 30
    passages = english + spanish
    scores = [z(engine, p) for p in passages]
    assert max(scores) < THRESHOLD_Z
    assert abs(statistics.mean(scores)) < 1  # centred on chance, not merely below 4


def test_repeated_ngrams_count_once():
    tokens = [5, 6, 7, 8, 9, 10] * 40  # a text that repeats itself: six distinct 5-grams
    assert score(KEY, 100, tokens).tokens <= 6


def test_generation_biases_exactly_the_green_lists_the_detector_counts(monkeypatch):
    """The kept, packed and in-place-hashed lists generation uses are the detector's
    definition, also after the least recent are dropped and made again."""
    monkeypatch.setattr(watermark, "VECTOR_BYTES", 4 * 4 * 1000)  # 4 vectors
    monkeypatch.setattr(watermark, "PACKED_BYTES", 16 * 125)  # 16 packed lists
    mark = watermark.Watermark(KEY, 1000)
    rng = random.Random(7)
    contexts = [[rng.randrange(1000) for _ in range(rng.randrange(8))] for _ in range(60)]
    for context in contexts + contexts[::-1]:  # the second pass meets dropped lists
        logits = np.linspace(-3, 3, 1000, dtype=np.float32)
        expected = logits + np.where(mark.green(context), np.float32(KEY.delta), np.float32(0))
        mark.bias(logits, context)
        assert np.array_equal(logits, expected)
    tokens = np.asarray([t for c in contexts for t in c], dtype=np.int64)
    flags, _ = mark.green_flags(tokens)
    windows = [tokens[: i + KEY.context].tolist() for i in range(len(flags))]
    assert flags.tolist() == [bool(mark.green(w)[tokens[i + KEY.context]])
                              for i, w in enumerate(windows)]  # fmt: skip


@pytest.mark.one_build  # validity comes from the grammar
def test_the_watermark_composes_with_greedy_decoding_and_grammars(engine):
    schema = {"type": "object", "properties": {"story": {"type": "string", "maxLength": 400}},
              "required": ["story"]}  # fmt: skip
    prompt = "Write a JSON object with a long story about a cat."
    out = generate(engine, prompt, KEY, 0, grammar=schema_to_grammar(schema))
    assert isinstance(json.loads(out)["story"], str)
    greedy = [generate(engine, p, KEY, 0, temperature=0.0) for p in PROMPTS[:3]]
    assert statistics.median(z(engine, g) for g in greedy) >= THRESHOLD_Z


def test_run_and_detect_from_the_command_line_keep_the_key_secret(tmp_path, starter_home):
    home = tmp_path / "home"
    shutil.copytree(starter_home, home)
    marked = run_cli("run", "--watermark", "--max-tokens", "200", "--seed", "3",
                     PROMPTS[0], home=home)  # fmt: skip
    assert marked.returncode == 0, marked.stderr
    key = (home / "config" / "watermark.key").read_text().strip()
    assert (home / "config" / "watermark.key").stat().st_mode & 0o077 == 0  # owner only
    found = run_cli("detect", "-", "--json", stdin=marked.stdout, home=home)
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)
    assert report["model"] == "smollm2-135m:q4_1" and report["tokens_scored"] > 50
    for text in (marked.stdout, marked.stderr, found.stdout, found.stderr):
        assert key not in text
    history = b"".join(p.read_bytes() for p in home.rglob("*.sqlite*"))
    assert key.encode() not in history and history  # the answer is stored, never the key
    # A vocabulary the watermark was not made with is refused, not scored wrongly.
    (home / "config" / "watermark.json").write_text('{"other-model": "0123456789abcdef"}')
    refused = run_cli("detect", "-", "-m", "smollm2-135m", stdin=marked.stdout, home=home)
    assert refused.returncode == 1 and "vocabulary is not one" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.one_build  # the server sets the mark whatever a request says, on any kernels
def test_serve_watermark_marks_every_answer_whatever_the_client_asks(tmp_path, starter_home,
                                                                    engine):  # fmt: skip
    from openai import OpenAI
    from serverproc import running_server

    home = tmp_path / "home"
    shutil.copytree(starter_home, home)
    key_env = {"LOCALLLM_WATERMARK_KEY": KEY.key.decode()}
    with running_server(home, "-m", "smollm2-135m", "--watermark", env=key_env) as url:
        client = OpenAI(base_url=url + "/v1", api_key="none")
        scores = []
        for i, prompt in enumerate(PROMPTS[:3]):
            reply = client.chat.completions.create(
                model="smollm2-135m", messages=[{"role": "user", "content": prompt}],
                max_tokens=260, temperature=0.7, seed=i,
                extra_body={"watermark": False},  # not the client's to turn off
            )  # fmt: skip
            scores.append(z(engine, reply.choices[0].message.content))
    assert statistics.median(scores) >= THRESHOLD_Z
    assert json.loads((home / "config" / "watermark.json").read_text())  # the model recorded
