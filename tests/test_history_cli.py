"""Stored conversations through the command line: continue, kill, export, import."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest
from conftest import cli_command, run_cli

from localllm.chat.history import History

GREEDY = ("--temperature", "0", "--max-tokens", "32")


@pytest.fixture
def home(fresh_home, starter_home):
    import shutil

    shutil.copytree(starter_home, fresh_home, ignore=shutil.ignore_patterns("history.sqlite3*"))
    return fresh_home


def stored(home) -> History:
    return History(home / "data" / "history.sqlite3")


def test_each_run_is_stored_and_continue_adds_a_turn(home):
    first = run_cli("run", *GREEDY, "--stats", "Which city is the capital of France?", home=home)
    assert first.returncode == 0, first.stderr
    second = run_cli(
        "run", "-c", *GREEDY, "--stats", "And which river flows through it?", home=home
    )
    assert second.returncode == 0, second.stderr
    conv = stored(home).latest()
    assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant"]
    assert conv.messages[1].content.strip() == first.stdout.strip() != ""  # what was shown
    # The second prompt carried the first exchange.
    p1 = json.loads(first.stderr.strip().splitlines()[-1])["prompt_tokens"]
    p2 = json.loads(second.stderr.strip().splitlines()[-1])["prompt_tokens"]
    assert p2 > p1 + 10
    other = run_cli("run", *GREEDY, "Name a colour.", home=home)
    assert other.returncode == 0
    again = run_cli("run", "--id", str(conv.id), *GREEDY, "Thanks!", home=home)
    assert again.returncode == 0, again.stderr
    assert len(stored(home).get(conv.id).messages) == 6


def test_no_save_leaves_the_history_alone(home):
    assert run_cli("run", "--no-save", *GREEDY, "Hello", home=home).returncode == 0
    assert stored(home).list() == []


@pytest.mark.parametrize("which", ["-c", "--id"])
def test_no_save_keeps_a_continued_turn_out_of_the_history(home, which):
    assert run_cli("run", *GREEDY, "Hello there.", home=home).returncode == 0
    conv = stored(home).latest()
    target = ("-c",) if which == "-c" else ("--id", str(conv.id))
    secret = run_cli("run", *target, "--no-save", *GREEDY, "My PIN is 4711.", home=home)
    assert secret.returncode == 0, secret.stderr
    after = stored(home).get(conv.id)
    assert len(after.messages) == 2
    assert "4711" not in json.dumps(stored(home).export_json(conv.id))
    assert b"4711" not in (home / "data" / "history.sqlite3").read_bytes()


def test_continue_with_nothing_to_continue_is_a_clear_error(home):
    proc = run_cli("run", "-c", "Hello", home=home)
    assert proc.returncode == 1 and "no conversation to continue" in proc.stderr


def test_policy_off_overflow_is_refused_and_nothing_stored(home):
    assert run_cli("run", "--ctx", "512", *GREEDY, "Hello", home=home).returncode == 0
    proc = run_cli("run", "-c", "--ctx", "512", "--context-policy", "off", *GREEDY,
                   "Describe the sea. " * 120, home=home)  # fmt: skip
    assert proc.returncode == 1
    assert "tokens over the context window" in proc.stderr and "Traceback" not in proc.stderr
    assert len(stored(home).latest().messages) == 2


def test_history_survives_a_sigkill_mid_answer(home):
    for question in ("Name a fruit.", "Name a vegetable."):
        args = ("-c",) if question.startswith("Name a v") else ()
        assert run_cli("run", *args, *GREEDY, question, home=home).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALLLM_")}
    env["LOCALLLM_HOME"] = str(home)
    proc = subprocess.Popen(
        [*cli_command(), "run", "-c", "--max-tokens", "400", "Write a long story about a ship."],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout.read(20)  # the answer is streaming
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    time.sleep(0.2)
    db = sqlite3.connect(home / "data" / "history.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    conv = stored(home).latest()
    roles = [m.role for m in conv.messages]
    assert roles == ["user", "assistant", "user", "assistant", "user"]  # only the answer is lost
    assert conv.messages[-1].content == "Write a long story about a ship."


def test_json_export_round_trips(home, tmp_path):
    assert run_cli("run", *GREEDY, "--system", "Be brief.", "Hi there", home=home).returncode == 0
    assert run_cli("run", "-c", *GREEDY, "What is 2+2?", home=home).returncode == 0
    conv_id = stored(home).latest().id
    out = tmp_path / "conv.json"
    proc = run_cli("history", "export", str(conv_id), "--format", "json", "-o", str(out), home=home)
    assert proc.returncode == 0, proc.stderr
    imported = run_cli("history", "import", str(out), home=home)
    assert imported.returncode == 0, imported.stderr
    new_id = int(imported.stdout.split()[2].rstrip(":"))
    assert new_id != conv_id
    original = stored(home).export_json(conv_id)
    again = stored(home).export_json(new_id)
    assert again == original


def test_markdown_export_and_history_commands(home):
    assert (
        run_cli("run", *GREEDY, "Which city is the capital of France?", home=home).returncode == 0
    )
    conv_id = stored(home).latest().id
    answer = stored(home).get(conv_id).messages[1].content
    md = run_cli("history", "export", str(conv_id), "--format", "md", home=home).stdout
    assert "## You" in md and "## Assistant" in md and answer.strip() and answer in md
    listing = run_cli("history", "list", "--json", home=home)
    assert json.loads(listing.stdout)[0]["messages"] == 2
    assert run_cli("history", "rename", str(conv_id), "Geography", home=home).returncode == 0
    assert stored(home).get(conv_id).title == "Geography"
    assert run_cli("history", "rm", str(conv_id), home=home).returncode == 2  # needs -y
    assert run_cli("history", "rm", str(conv_id), "-y", home=home).returncode == 0
    missing = run_cli("history", "show", str(conv_id), home=home)
    assert missing.returncode == 1 and "history list" in missing.stderr


def test_import_of_a_non_export_is_a_clear_error(home, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    proc = run_cli("history", "import", str(bad), home=home)
    assert proc.returncode == 1 and "not a localllm conversation export" in proc.stderr


def test_blocked_phrases_from_the_config_are_never_shown(home):
    question = "Which city is the capital of France?"
    first = run_cli("run", "--no-save", *GREEDY, question, home=home)
    words = [w.strip(".,!?;:\"'()") for w in first.stdout.split()]
    phrase = max(words, key=len)  # the model's own longest word: its greedy answer has it
    assert len(phrase) >= 4, first.stdout
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "config.toml").write_text(
        f"[guardrails]\nblocked_phrases = [{json.dumps(phrase)}]\n"
    )
    proc = run_cli("run", *GREEDY, question, home=home)
    assert proc.returncode == 0, proc.stderr
    assert phrase.lower() not in proc.stdout.lower()
    assert "blocked phrase" in proc.stderr
    assert phrase.lower() not in stored(home).latest().messages[-1].content.lower()


def test_a_bad_config_value_names_the_key(home):
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "config.toml").write_text('[chat]\ntemperature = "hot"\n')
    proc = run_cli("run", *GREEDY, "Hello", home=home)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "chat.temperature" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "internal error" not in proc.stderr


def test_two_writers_on_one_conversation_both_keep_their_turns(home):
    assert run_cli("run", *GREEDY, "Hello there.", home=home).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALLLM_")}
    env["LOCALLLM_HOME"] = str(home)
    writers = [
        subprocess.Popen(
            [*cli_command(), "run", "-c", *GREEDY, question],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for question in ("Name a fruit.", "Name a colour.")
    ]
    for proc in writers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    messages = stored(home).latest().messages
    contents = [m.content for m in messages]
    assert len(messages) == 6
    assert "Name a fruit." in contents and "Name a colour." in contents


@pytest.mark.parametrize(
    "bad_message", [{"role": "user"}, {"role": "wizard", "content": "abracadabra"}]
)
def test_a_bad_message_in_an_import_stores_nothing(home, tmp_path, bad_message):
    assert run_cli("run", *GREEDY, "Hello there.", home=home).returncode == 0
    export = stored(home).export_json(stored(home).latest().id)
    export["messages"].append(bad_message)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(export))
    before = stored(home).list()
    proc = run_cli("history", "import", str(bad), home=home)
    assert proc.returncode == 1 and "malformed" in proc.stderr and "Traceback" not in proc.stderr
    assert stored(home).list() == before


def test_a_malicious_chat_template_is_refused_by_the_sandbox(home, starter_path, tmp_path):
    """A model file whose template tries to reach Python internals."""
    data = bytearray(starter_path.read_bytes())
    from localllm.gguf_meta import read_gguf_info

    template = read_gguf_info(starter_path).chat_template.encode()
    evil = b"{{ messages.__class__.__mro__[1].__subclasses__() }}"
    evil = evil + b"{#" + b" " * (len(template) - len(evil) - 4) + b"#}"
    assert len(evil) == len(template)
    at = data.index(template)
    data[at : at + len(template)] = evil
    model = tmp_path / "evil.gguf"
    model.write_bytes(bytes(data))
    proc = run_cli("run", "-m", str(model), *GREEDY, "Hello", home=home)
    assert proc.returncode == 1
    assert "chat template" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
