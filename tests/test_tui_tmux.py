"""The installed `localllm chat` in a real terminal (tmux), driven by keystrokes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time

from conftest import cli_command, run_cli


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def wait_for_screen(session: str, text: str, timeout: float) -> str:
    """The screen once it shows text (a regular expression)."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if re.search(text, screen):
            return screen
        time.sleep(0.25)
    raise AssertionError(f"{text!r} did not appear; the screen was:\n{screen}")


def test_chat_answers_in_a_real_terminal_and_keeps_the_conversation(tmp_path, starter_home):
    assert shutil.which("tmux"), "tmux is needed (.ci/run installs it)"
    home = tmp_path / "home"
    shutil.copytree(starter_home, home, ignore=shutil.ignore_patterns("history.sqlite3*"))
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "config.toml").write_text("[chat]\ntemperature = 0\nmax_tokens = 48\n")
    session = f"localllm-test-{os.getpid()}"
    command = " ".join(shlex.quote(part) for part in cli_command())
    env = f"LOCALLLM_HOME={shlex.quote(str(home))} TERM=xterm-256color"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30",
         f"env {env} {command} chat")  # fmt: skip
    try:
        wait_for_screen(session, "Send", timeout=60)  # the footer: the app is up
        tmux("send-keys", "-t", session, "-l", "Which city is the capital of France?")
        wait_for_screen(session, r"capital of France\?", timeout=30)  # typed into the input
        tmux("send-keys", "-t", session, "Enter")  # once: keys are queued, never dropped
        # The status bar shows the answer's speed once it is complete ("– tok/s" before).
        screen = wait_for_screen(session, r"\d+\.\d tok/s", timeout=150)
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "C-q")
        deadline = time.monotonic() + 20
        while session in tmux("list-sessions") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session not in tmux("list-sessions"), "Ctrl+Q did not quit the app"
    finally:
        tmux("kill-session", "-t", session)
    from localllm.chat.history import History

    (_question, answer) = History(home / "data" / "history.sqlite3").latest().messages
    words = [w for w in answer.content.split() if w.isalnum() and len(w) >= 4]
    assert words, answer.content
    assert words[0] in screen  # what the model said (whatever it was) was on the screen
    listing = run_cli("history", "list", "--json", home=home)
    rows = json.loads(listing.stdout)
    assert (
        rows
        and rows[0]["title"].startswith("Which city is the capital")
        and rows[0]["messages"] == 2
    )
