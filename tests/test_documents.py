"""Reading documents: optional HTML end tags, text-free inputs, pipes, encodings, spool files."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from conftest import run_cli

from localllm.documents.readers import open_document, text_blocks
from localllm.errors import DocumentError

UNCLOSED_HEAD = (
    "<!doctype html><html><head><title>R</title><body><p>Marie Curie won two Nobel Prizes.</p>"
)


@pytest.fixture
def home(tmp_path, starter_home):
    home = tmp_path / "home"
    shutil.copytree(starter_home, home)
    return home


def read(path, spool) -> str:
    return "".join(text_blocks(open_document(str(path), spool)))


@pytest.mark.parametrize(
    "page",
    [
        UNCLOSED_HEAD,
        "<html><head><meta charset=utf-8><p>Marie Curie won two Nobel Prizes.",
        "<html><head><title>R</title></head><body><p>Marie Curie won two Nobel Prizes.</p>",
    ],
)
def test_the_body_is_read_whether_or_not_head_is_closed(tmp_path, page):
    (tmp_path / "p.html").write_text(page)
    text = read(tmp_path / "p.html", tmp_path / "spool")
    assert "Marie Curie won two Nobel Prizes." in text
    assert "R" not in text.replace("Prizes", "")  # the title is not body text


@pytest.mark.parametrize(
    "name, data, cause",
    [
        ("markup.html", "<html><head><title>Only a title</title></head><body></body></html>",
         "no visible text"),
        ("spaces.txt", " \n\t\n" * 100 + "\u00a0", "only whitespace"),
    ],
)  # fmt: skip
def test_a_document_without_text_is_a_one_line_error(tmp_path, home, name, data, cause):
    (tmp_path / name).write_text(data)
    with pytest.raises(DocumentError, match=cause):
        read(tmp_path / name, tmp_path / "spool")
    proc = run_cli("summarize", str(tmp_path / name), "--json", home=home)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_a_page_with_an_unclosed_head_is_summarized_from_its_body(tmp_path, home):
    (tmp_path / "p.html").write_text(UNCLOSED_HEAD)
    proc = run_cli("summarize", str(tmp_path / "p.html"), "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    import json

    result = json.loads(proc.stdout)
    assert result["stats"]["document_tokens"] > 5 and result["summary"].strip()


def spooled(home) -> list[str]:
    spool = home / "cache" / "spool"
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


@pytest.mark.parametrize("extra", [(), ("--combine", "{other}")])
def test_stdin_is_not_kept_after_a_summary(tmp_path, home, extra):
    (tmp_path / "other.txt").write_text("Lisbon is the capital of Portugal. " * 5)
    args = [a.format(other=tmp_path / "other.txt") for a in extra]
    proc = run_cli("summarize", "-", *args, "--length", "short", home=home,
                   stdin="confidential: the launch is on 3 May. " * 5)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert spooled(home) == []


def test_stdin_is_not_kept_after_a_failure(home):
    proc = run_cli("summarize", "-", home=home, stdin="   \n  ")
    assert proc.returncode == 1
    assert spooled(home) == []


def test_a_pipe_is_read_not_called_empty(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def write():
        with fifo.open("w") as out:
            out.write("Marie Curie won two Nobel Prizes.\n")

    writer = threading.Thread(target=write)
    writer.start()
    doc = open_document(str(fifo), tmp_path / "spool")
    writer.join()
    assert "Marie Curie" in "".join(text_blocks(doc))
    doc.discard()
    assert list((tmp_path / "spool").iterdir()) == []  # the copy goes with the document


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_text(tmp_path, encoding):
    text = "La ciudad de Sevilla es la capital de Andalucía. " * 20
    (tmp_path / "s.txt").write_bytes(text.encode(encoding))
    assert read(tmp_path / "s.txt", tmp_path / "spool") == text


@pytest.mark.parametrize("name", ["notes [draft].txt", "odd [/x] name.txt"])
def test_notices_show_brackets_as_text(tmp_path, home, name):
    """A warning naming the file goes through Rich: `[draft]` must show, `[/x]` not crash."""
    text = "Sevilla es la capital de Andalucía. " * 8
    (tmp_path / name).parent.mkdir(exist_ok=True)  # "odd [/x] name": a folder "odd [", a file
    (tmp_path / name).write_bytes(text.encode() + b"\xff tail")  # UTF-8 with one bad byte
    proc = run_cli("summarize", str(tmp_path / name), "--length", "short", home=home)
    assert proc.returncode == 0, proc.stderr
    assert name in proc.stderr and "could not be decoded" in proc.stderr


@pytest.mark.parametrize(
    ("reply", "kept"),
    [
        ("La ciudad fue reparada. El pueblo creció hasta 5697. Durante el invi",
         "La ciudad fue reparada. El pueblo creció hasta 5697."),
        ("Er sagte: «Es ist fertig.» Danach ka", "Er sagte: «Es ist fertig.»"),
        ("- the harbour\n- the mill\n- the coun", "- the harbour\n- the mill"),
        ("原文第一句。第二句没有写", "原文第一句。"),
        ("Version 3.5 came out on 4 May. It is 2.5 times fa", "Version 3.5 came out on 4 May."),
        ("One sentence that never ends", "One sentence that never ends"),  # nothing whole
        ("Already whole.  ", "Already whole."),
    ],
)  # fmt: skip
def test_a_cut_reply_keeps_its_whole_sentences(reply, kept):
    from localllm.documents.chunking import through_last_sentence

    assert through_last_sentence(reply) == kept
