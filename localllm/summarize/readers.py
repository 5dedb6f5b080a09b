"""Read documents as streams of text: plain text and Markdown, HTML, PDF, stdin.

Encodings are detected (BOMs, UTF-8, then charset-normalizer on a sample);
undecodable bytes become U+FFFD with a warning, never a crash. Text comes out
in blocks so a 200 MB file is never one Python string. Binary, empty and
missing inputs, and directories, raise one-line errors.
"""

from __future__ import annotations

import codecs
import hashlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from localllm.errors import LocalLLMError

BLOCK = 1024 * 1024  # bytes read at a time
SNIFF = 64 * 1024  # bytes used to detect binary content and the encoding
BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
HTML_SUFFIXES = (".html", ".htm", ".xhtml")


class DocumentError(LocalLLMError, ValueError):
    """An input that cannot be summarized (missing, empty, binary, unreadable)."""


@dataclass
class Document:
    """A readable input: where it is, how to decode it, and its content hash."""

    name: str  # what to show: the path as given, or "stdin"
    path: Path
    kind: str  # "text" | "html" | "pdf"
    encoding: str | None = None
    sha256: str = ""
    warnings: list[str] = field(default_factory=list)


def _sniff_encoding(head: bytes) -> str:
    for bom, name in BOMS:
        if head.startswith(bom):
            return name
    # UTF-8 with a few damaged bytes is still UTF-8 (they are replaced, with a warning);
    # a legacy code page fails UTF-8 on nearly every accented letter instead.
    decoded = head.decode("utf-8", errors="replace")
    bad = decoded.count("\ufffd")
    valid_multibyte = sum(1 for ch in decoded if ord(ch) > 127) - bad
    if bad == 0 or valid_multibyte > bad:
        return "utf-8"
    from charset_normalizer import from_bytes

    matches = list(from_bytes(head))
    if not matches:
        return "cp1252"
    best = matches[0]
    # Short Western text often ties between code pages; Windows-1252 (a superset of
    # Latin-1) is by far the most common of them, so it wins a tie.
    tied = [m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    return "cp1252" if "cp1252" in tied else best.encoding


def _looks_binary(head: bytes, encoding: str) -> bool:
    return "16" not in encoding and b"\0" in head


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def open_document(name: str, spool_dir: Path) -> Document:
    """Check an input and work out how to read it; stdin ('-') is spooled to a file first."""
    if name == "-":
        path = _spool_stdin(spool_dir)
    else:
        path = Path(name).expanduser()
        if not path.exists():
            raise DocumentError(f"{name}: no such file: check the path")
        if path.is_dir():
            raise DocumentError(f"{name} is a directory: give the files inside it")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(SNIFF)
    except OSError as exc:
        raise DocumentError(f"cannot read {name}: {exc.strerror or exc}") from None
    if size == 0 or not head.strip():
        raise DocumentError(f"{name} is empty: there is nothing to summarize")
    doc = Document(name="stdin" if name == "-" else name, path=path, kind="text")
    if path.suffix.lower() == ".pdf" or head.startswith(b"%PDF-"):
        doc.kind = "pdf"
    else:
        doc.encoding = _sniff_encoding(head)
        if _looks_binary(head, doc.encoding):
            raise DocumentError(
                f"{name} looks like a binary file: summarize text, Markdown, HTML or PDF"
            )
        if path.suffix.lower() in HTML_SUFFIXES or head.lstrip()[:15].lower().startswith(
            (b"<!doctype html", b"<html")
        ):
            doc.kind = "html"
    doc.sha256 = _hash_file(path)
    return doc


def _spool_stdin(spool_dir: Path) -> Path:
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=spool_dir, prefix="stdin-", delete=False) as out:
        shutil.copyfileobj(sys.stdin.buffer, out, BLOCK)
    return Path(out.name)


def _decoded_blocks(doc: Document) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder(doc.encoding or "utf-8")(errors="replace")
    replaced = 0
    with doc.path.open("rb") as fh:
        while block := fh.read(BLOCK):
            text = decoder.decode(block)
            replaced += text.count("\ufffd")
            yield text
    tail = decoder.decode(b"", final=True)
    replaced += tail.count("\ufffd")
    if tail:
        yield tail
    if replaced:
        doc.warnings.append(
            f"{doc.name}: {replaced} bytes could not be decoded as {doc.encoding} and were replaced"
        )


class _VisibleText(HTMLParser):
    """Collects the text a browser would show: no scripts, styles or head."""

    SKIP = frozenset({"script", "style", "head", "noscript", "template", "svg"})
    BREAKS = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section",
              "article", "blockquote", "pre", "ul", "ol", "table", "header", "footer"})  # fmt: skip

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.skipping = 0
        self.out: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BREAKS:
            self.out.append("\n\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BREAKS:
            self.out.append("\n\n")

    def handle_data(self, data):
        if not self.skipping:
            self.out.append(data)

    def take(self) -> str:
        text, self.out = "".join(self.out), []
        return text


def _html_blocks(doc: Document) -> Iterator[str]:
    parser = _VisibleText()
    for block in _decoded_blocks(doc):
        parser.feed(block)
        yield parser.take()
    parser.close()
    yield parser.take()


def _pdf_blocks(doc: Document) -> Iterator[str]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise DocumentError(
            f"{doc.name} is a PDF: install PDF support with `pip install 'localllm[pdf]'`"
        ) from None
    try:
        reader = PdfReader(doc.path)
        for page in reader.pages:
            yield (page.extract_text() or "") + "\n\n"
    except (PdfReadError, ValueError, KeyError) as exc:
        raise DocumentError(f"{doc.name} is not a readable PDF ({exc})") from None


def text_blocks(doc: Document) -> Iterator[str]:
    """The document's text, in blocks of about a megabyte."""
    if doc.kind == "pdf":
        return _pdf_blocks(doc)
    if doc.kind == "html":
        return _html_blocks(doc)
    return _decoded_blocks(doc)


def combine_documents(docs: list[Document], spool_dir: Path) -> Document:
    """One document made of several, each headed by its name (for --combine)."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=spool_dir, prefix="combined-", suffix=".txt", delete=False
    ) as out:
        for doc in docs:
            out.write(f"# {Path(doc.name).name}\n\n")
            for block in text_blocks(doc):
                out.write(block)
            out.write("\n\n")
    combined = Document(
        name=" + ".join(d.name for d in docs), path=Path(out.name), kind="text", encoding="utf-8"
    )
    combined.sha256 = _hash_file(combined.path)
    combined.warnings = [w for d in docs for w in d.warnings]
    return combined
