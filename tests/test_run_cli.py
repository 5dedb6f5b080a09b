"""`localllm run` end to end on the real starter model."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from gguf_damage import copy_with_equal_tokens

CAPITAL = "Which city is the capital of France?"
SKY = "What colour is the sky on a clear day?"


GREEDY = ("--temperature", "0", "--max-tokens", "24", "--ctx", "2048", "--no-save")


def stats_of(proc) -> dict:
    return json.loads(proc.stderr.strip().splitlines()[-1])


def greedy_answer(engine, question: str, max_tokens: int = 24) -> str:
    """What the model answers at temperature 0, computed in this process from a fresh cache
    (the same machine and build as the CLI under test: the same tokens)."""
    from localllm.engine import SamplingParams, Token

    engine.reset()
    prompt = engine.chat_tokens([{"role": "user", "content": question}])
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    return "".join(e.text for e in engine.stream(prompt, params) if isinstance(e, Token))


def test_run_streams_the_models_answer_to_the_chat_prompt(starter_home, engine):
    proc = run_cli("run", *GREEDY, "--stats", CAPITAL, home=starter_home)
    assert proc.returncode == 0, proc.stderr
    stats = stats_of(proc)
    # The question went through the model's chat template, and the answer is the model's.
    assert stats["prompt_tokens"] == len(engine.chat_tokens([{"role": "user", "content": CAPITAL}]))
    assert proc.stdout.strip() == greedy_answer(engine, CAPITAL).strip()
    assert proc.stdout.strip()


def test_prompt_words_are_joined(starter_home):
    joined = run_cli("run", *GREEDY, "--stats", *CAPITAL.split(), home=starter_home)
    quoted = run_cli("run", *GREEDY, "--stats", CAPITAL, home=starter_home)
    assert joined.returncode == 0, joined.stderr
    assert stats_of(joined)["prompt_tokens"] == stats_of(quoted)["prompt_tokens"]
    assert joined.stdout == quoted.stdout


def test_same_seed_gives_the_same_answer(starter_home):
    args = (
        "run",
        "--temperature",
        "0.9",
        "--seed",
        "1234",
        "--max-tokens",
        "40",
        "Tell me a story.",
    )
    first = run_cli(*args, home=starter_home)
    second = run_cli(*args, home=starter_home)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip()
    assert first.stdout == second.stdout


def test_max_tokens_stops_at_that_many_tokens(starter_home):
    proc = run_cli(
        "run", "--max-tokens", "5", "--temperature", "0", "--stats",
        "Write a long essay about the history of Rome.", home=starter_home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stats = stats_of(proc)
    assert stats["completion_tokens"] == 5
    assert stats["stop_reason"] == "length"
    assert 0 < len(proc.stdout.split()) <= 5


def test_stats_are_sane(starter_home):
    proc = run_cli(
        "run", "--temperature", "0", "--max-tokens", "32", "--stats", SKY, home=starter_home
    )
    assert proc.returncode == 0, proc.stderr
    stats = stats_of(proc)
    for key in ("model", "backend", "prompt_tokens", "completion_tokens", "ttft_s",
                "prefill_tps", "decode_tps"):  # fmt: skip
        assert key in stats
    assert stats["model"] == "smollm2-135m:q4_1"
    assert stats["backend"] == "CPU"
    assert 1 < stats["completion_tokens"] <= 32
    assert stats["prompt_tokens"] > 10
    assert stats["decode_tps"] > 0 and stats["prefill_tps"] > 0
    assert 0 < stats["ttft_s"] < 60
    # The answer alone is on stdout; the statistics alone on stderr.
    assert "{" not in proc.stdout


def test_reads_the_prompt_from_stdin(starter_home):
    piped = run_cli("run", *GREEDY, "-", stdin=CAPITAL, home=starter_home)
    argument = run_cli("run", *GREEDY, CAPITAL, home=starter_home)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip() and piped.stdout == argument.stdout


def test_non_utf8_stdin_is_read_not_a_crash(starter_home):
    import subprocess

    from conftest import cli_command

    env = {"LOCALLLM_HOME": str(starter_home), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [*cli_command(), "run", *GREEDY, "-"], input="Un café, por favor?\n".encode("cp1252"),
        capture_output=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr and b"internal error" not in proc.stderr
    assert b"stdin is not UTF-8: read it as cp125" in proc.stderr  # 0xE9 is é in cp1250-1252
    assert proc.stdout.strip()


def test_stop_string_ends_the_answer_before_it(starter_home):
    first = run_cli("run", *GREEDY, CAPITAL, home=starter_home)
    words = first.stdout.split()
    assert len(words) >= 4, first.stdout
    stop = words[len(words) // 2]  # a word from the middle of the model's own answer
    proc = run_cli("run", *GREEDY, "--stop", stop, "--stats", CAPITAL, home=starter_home)
    assert proc.returncode == 0, proc.stderr
    assert stop not in proc.stdout
    assert proc.stdout.rstrip("\n") == first.stdout[: first.stdout.index(stop)]
    assert stats_of(proc)["stop_reason"] == "stop"


def test_raw_mode_continues_plain_text(starter_home):
    proc = run_cli("run", "--raw", "--temperature", "0", "--max-tokens", "8", "--stats",
                   "One, two, three, four,", home=starter_home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert stats_of(proc)["prompt_tokens"] < 12  # no chat template around it


def _assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_model_is_a_one_line_error(starter_home):
    proc = run_cli("run", "-m", "no-such-model", "hi", home=starter_home)
    _assert_one_line_error(proc, "unknown model 'no-such-model'", "smollm2-135m")


def test_missing_file_is_a_one_line_error(starter_home, tmp_path):
    proc = run_cli("run", "-m", str(tmp_path / "absent.gguf"), "hi", home=starter_home)
    _assert_one_line_error(proc, "no such file")


def test_non_gguf_file_is_a_one_line_error(starter_home, tmp_path):
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("these are not model weights\n")
    proc = run_cli("run", "-m", str(bogus), "hi", home=starter_home)
    _assert_one_line_error(proc, "not a GGUF model file")


@pytest.mark.parametrize("keep_bytes", [2_000, 50_000_000])
def test_truncated_gguf_is_a_one_line_error(starter_home, starter_path, tmp_path, keep_bytes):
    cut = tmp_path / "cut.gguf"
    with starter_path.open("rb") as src:
        cut.write_bytes(src.read(keep_bytes))
    proc = run_cli("run", "-m", str(cut), "hi", home=starter_home)
    _assert_one_line_error(proc, "truncated", "download it again")


def test_two_equal_tokens_are_a_one_line_error(starter_home, starter_path, tmp_path):
    """llama.cpp aborts on them (exit 134, not a word); we say the file is damaged."""
    copy = tmp_path / "equal-tokens.gguf"
    copy_with_equal_tokens(starter_path, copy)
    proc = run_cli("run", "-m", str(copy), "hi", home=starter_home)
    _assert_one_line_error(proc, "damaged", "repeats", "download it again")


def test_directory_is_a_one_line_error(starter_home, tmp_path):
    proc = run_cli("run", "-m", str(tmp_path), "hi", home=starter_home)
    _assert_one_line_error(proc, "directory")


def test_gguf_path_runs_directly(starter_home, starter_path):
    by_path = run_cli("run", "-m", str(starter_path), *GREEDY, CAPITAL, home=starter_home)
    by_name = run_cli("run", "-m", "smollm2-135m", *GREEDY, CAPITAL, home=starter_home)
    assert by_path.returncode == 0, by_path.stderr
    assert by_path.stdout.strip() and by_path.stdout == by_name.stdout


def test_missing_prompt_is_a_usage_error(starter_home):
    proc = run_cli("run", home=starter_home, stdin="")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_debug_mode_shows_the_traceback(starter_home):
    proc = run_cli("run", "-m", "no-such-model", "hi", home=starter_home, LOCALLLM_DEBUG="1")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr


def test_a_context_below_the_minimum_is_raised_with_a_notice(starter_home):
    proc = run_cli("run", "--ctx", "100", "--max-tokens", "2", "--no-save", "--stats", "Hi",
                   home=starter_home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "context 100 is below the minimum of 512; using 512" in proc.stderr
    assert stats_of(proc)["n_ctx"] == 512


def test_a_base_model_says_what_it_ignores(starter_home, gemma_path, tmp_path):
    """Gemma 3 270M has no chat template: --system and --continue cannot apply."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(starter_home, home, ignore=shutil.ignore_patterns("history.sqlite3*"))
    assert run_cli("run", "--max-tokens", "2", "Hi", home=home).returncode == 0
    proc = run_cli("run", "-m", str(gemma_path), "--system", "Be brief.", "-c", "--max-tokens",
                   "4", "The capital of France is", home=home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "no chat template" in proc.stderr and "not stored in the history" in proc.stderr
    assert "--system and --continue/--id ignored" in proc.stderr
