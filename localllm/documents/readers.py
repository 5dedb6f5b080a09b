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

from localllm.errors import DocumentError

BLOCK = 1024 * 1024  # bytes read at a time
SNIFF = 64 * 1024  # bytes used to detect binary content and the encoding
BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
HTML_SUFFIXES = (".html", ".htm", ".xhtml")


@dataclass
class Document:
    """A readable input: where it is, how to decode it, and its content hash."""

    name: str  # what to show: the path as given, or "stdin"
    path: Path
    kind: str  # "text" | "html" | "pdf"
    encoding: str | None = None
    sha256: str = ""
    warnings: list[str] = field(default_factory=list)
    temporary: bool = False  # a spooled copy (stdin, a pipe, --combine): ours to delete

    def discard(self) -> None:
        """Delete the spooled copy, if this is one: what came in on a pipe is not kept."""
        if self.temporary:
            self.path.unlink(missing_ok=True)


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text without a BOM: mostly-ASCII text has a zero in every other byte."""
    even, odd = head[0::2], head[1::2]
    if len(head) < 4 or head.count(0) < len(head) // 4:
        return None
    if odd.count(0) > 0.6 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.6 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _sniff_encoding(head: bytes) -> str:
    for bom, name in BOMS:
        if head.startswith(bom):
            return name
    if utf16 := _utf16_without_bom(head):
        return utf16
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


def decode_text(data: bytes) -> tuple[str, str]:
    """Bytes of unknown encoding as text, and the encoding used (undecodable bytes -> U+FFFD)."""
    encoding = _sniff_encoding(data[:SNIFF])
    return data.decode(encoding, errors="replace"), encoding


def _looks_binary(head: bytes, encoding: str) -> bool:
    return "16" not in encoding and b"\0" in head


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def open_document(name: str, spool_dir: Path) -> Document:
    """Check an input and work out how to read it; stdin ('-') is spooled to a file first."""
    spooled = name == "-"
    if spooled:
        path = _spool_stream(sys.stdin.buffer, spool_dir)
    else:
        path = Path(name).expanduser()
        if not path.exists():
            raise DocumentError(f"{name}: no such file: check the path")
        if path.is_dir():
            raise DocumentError(f"{name} is a directory: give the files inside it")
        if not path.is_file():
            # A pipe such as <(cmd) has no size and can be read only once: keep a copy.
            path, spooled = _spool_path(name, path, spool_dir), True
    try:
        return _inspect(name, path, spooled)
    except BaseException:
        if spooled:
            path.unlink(missing_ok=True)
        raise


def _spool_path(name: str, path: Path, spool_dir: Path) -> Path:
    try:
        with path.open("rb") as stream:
            return _spool_stream(stream, spool_dir)
    except OSError as exc:
        raise DocumentError(f"cannot read {name}: {exc.strerror or exc}") from None


def _inspect(name: str, path: Path, spooled: bool) -> Document:
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(SNIFF)
    except OSError as exc:
        raise DocumentError(f"cannot read {name}: {exc.strerror or exc}") from None
    if size == 0 or not head.strip():
        raise DocumentError(f"{name} is empty: there is nothing to summarize")
    doc = Document(name="stdin" if name == "-" else name, path=path, kind="text", temporary=spooled)
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
    doc.sha256 = file_sha256(path)
    return doc


def _spool_stream(stream, spool_dir: Path) -> Path:
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=spool_dir, prefix="stdin-", delete=False) as out:
        try:
            shutil.copyfileobj(stream, out, BLOCK)
        except BaseException:
            out.close()
            Path(out.name).unlink(missing_ok=True)
            raise
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
    # What may stand in <head>; any other tag means the body began (its end tag is optional).
    HEAD_CONTENT = frozenset({"title", "meta", "link", "base", "style", "script", "noscript",
                              "template"})  # fmt: skip
    BREAKS = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section",
              "article", "blockquote", "pre", "ul", "ol", "table", "header", "footer"})  # fmt: skip

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.skipping = 0
        self.in_head = False
        self.out: list[str] = []

    def handle_starttag(self, tag, attrs):
        if self.in_head and tag not in self.HEAD_CONTENT:
            self._leave_head()
        if tag == "head":
            self.in_head = True
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BREAKS:
            self.out.append("\n\n")

    def _leave_head(self) -> None:
        self.in_head = False
        self.skipping = max(0, self.skipping - 1)

    def handle_endtag(self, tag):
        if tag == "head":
            if self.in_head:
                self._leave_head()
        elif tag in self.SKIP and self.skipping:
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
    """The document's text, in blocks of about a megabyte.

    A document with no text in it (a page of markup only, a scanned PDF) raises
    DocumentError once it has been read through: there is nothing to work on.
    """
    if doc.kind == "pdf":
        blocks = _pdf_blocks(doc)
    elif doc.kind == "html":
        blocks = _html_blocks(doc)
    else:
        blocks = _decoded_blocks(doc)
    return _nonempty(doc, blocks)


def full_text(doc: Document) -> str:
    """The whole document as one string, markup and all for text and HTML (translate keeps
    the markup); a PDF's extracted text. Empty documents raise DocumentError."""
    blocks = _pdf_blocks(doc) if doc.kind == "pdf" else _decoded_blocks(doc)
    return "".join(_nonempty(doc, blocks))


def pages(doc: Document) -> list[tuple[int | None, str]]:
    """The document's visible text by page: (page number from 1, text) for a PDF, one
    (None, text) for everything else. Joined, they are exactly "".join(text_blocks(doc)),
    so offsets into one are offsets into the other."""
    if doc.kind != "pdf":
        return [(None, "".join(text_blocks(doc)))]
    return list(enumerate(_nonempty(doc, _pdf_blocks(doc)), start=1))


def _nonempty(doc: Document, blocks: Iterator[str]) -> Iterator[str]:
    seen_text = False
    for block in blocks:
        seen_text = seen_text or bool(block.strip())
        yield block
    if not seen_text:
        hint = {
            "pdf": "a scanned PDF has only images: run OCR on it first",
            "html": "the page has markup but no visible text",
        }.get(doc.kind, "it holds only whitespace")
        raise DocumentError(f"{doc.name} has no text to work on ({hint})")


def combine_documents(docs: list[Document], spool_dir: Path) -> Document:
    """One document made of several, each headed by its name (for --combine)."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=spool_dir, prefix="combined-", suffix=".txt", delete=False
    ) as out:
        combined = Document(
            name=" + ".join(d.name for d in docs), path=Path(out.name), kind="text",
            encoding="utf-8", temporary=True,
        )  # fmt: skip
        try:
            for doc in docs:
                out.write(f"# {Path(doc.name).name}\n\n")
                for block in text_blocks(doc):
                    out.write(block)
                out.write("\n\n")
        except BaseException:
            out.close()
            combined.discard()
            raise
    combined.sha256 = file_sha256(combined.path)
    combined.warnings = [w for d in docs for w in d.warnings]
    return combined
