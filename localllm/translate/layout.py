"""A document split into what is translated and what must not change.

A layout is a list of parts: fixed text (markup, code, separators, whitespace),
kept byte for byte, and segments (the visible text), each replaced by its
translation when the document is rendered again. Markdown keeps headings, list
markers, block quotes, tables, thematic breaks and code blocks as fixed text;
HTML keeps every tag, comment, script, style and preformatted block. A segment
never holds a blank line, so the rendered document has the same paragraphs in
the same order whatever the model writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BLANK_LINES = re.compile(r"(\n[ \t]*){2,}")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# What opens a Markdown line and is not prose: block quotes, headings, list markers.
LINE_MARKUP = re.compile(
    r"^([ \t]*(?:>[ \t]?)*(?:#{1,6}[ \t]+|[-*+][ \t]+(?:\[[ xX]\][ \t]+)?|\d{1,9}[.)][ \t]+)?)"
)
STARTS_ITEM = re.compile(r"^[ \t]*(?:>[ \t]?)*(?:#{1,6}[ \t]|[-*+][ \t]|\d{1,9}[.)][ \t])")
RULE = re.compile(r"^ {0,3}([-*_=])([ \t]*\1){2,}[ \t]*$")  # --- *** ___ and setext ===
TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
INDENTED_CODE = re.compile(r"^( {4}|\t)")

# HTML: what is kept whole (never translated) and what is a tag.
HTML_KEPT = re.compile(
    r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<(script|style|pre|code|textarea|svg|math)\b.*?</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)
HTML_TAG = re.compile(r"<[^<>]*>")
# Inline tags sit inside a sentence: they stay in the segment (protected), not split it.
INLINE_TAGS = frozenset(
    [
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "cite",
        "data",
        "dfn",
        "em",
        "font",
        "i",
        "kbd",
        "mark",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "time",
        "u",
        "var",
        "wbr",
        "br",
    ]
)


@dataclass
class Segment:
    text: str
    paragraph: int  # segments of one paragraph are sent to the model together


@dataclass
class Layout:
    kind: str  # "markdown" | "html" | "text"
    parts: list[str | int] = field(default_factory=list)  # fixed text, or a segment's index
    segments: list[Segment] = field(default_factory=list)

    def fixed(self, text: str) -> None:
        if text:
            self.parts.append(text)

    def segment(self, text: str, paragraph: int) -> None:
        """Visible text; its surrounding whitespace stays fixed."""
        stripped = text.strip()
        if not stripped:
            self.fixed(text)
            return
        start = text.index(stripped[0])
        self.fixed(text[:start])
        self.parts.append(len(self.segments))
        self.segments.append(Segment(stripped, paragraph))
        self.fixed(text[start + len(stripped) :])

    def render(self, translations: list[str]) -> str:
        return "".join(translations[p] if isinstance(p, int) else p for p in self.parts)

    @property
    def paragraphs(self) -> int:
        return len({s.paragraph for s in self.segments})


def layout_for(text: str, kind: str) -> Layout:
    if kind == "html":
        return html_layout(text)
    return markdown_layout(text, kind)


# -- Markdown (and plain text, which is Markdown without markup) -----------------------------


def markdown_layout(text: str, kind: str = "markdown") -> Layout:
    layout = Layout(kind)
    lines = text.splitlines(keepends=True)
    paragraph, i = 0, 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            layout.fixed(line)
            i += 1
            continue
        end = _block_end(lines, i)
        block = lines[i:end]
        if FENCE.match(line) or all(INDENTED_CODE.match(b) or not b.strip() for b in block):
            layout.fixed("".join(block))  # code: never sent to the model
        elif len(block) >= 2 and "|" in block[0] and TABLE_RULE.match(block[1]):
            _table(layout, block, paragraph)
        else:
            _prose(layout, block, paragraph)
        paragraph += 1
        i = end
    return layout


def _block_end(lines: list[str], start: int) -> int:
    """Index after the block starting at start: to a blank line, or past a closing fence."""
    fence = FENCE.match(lines[start])
    if fence:
        marker = fence.group(1)
        for j in range(start + 1, len(lines)):
            if lines[j].strip().startswith(marker[0] * len(marker)):
                return j + 1
        return len(lines)  # an unclosed fence runs to the end, as Markdown reads it
    j = start
    while j < len(lines) and lines[j].strip() and (j == start or not FENCE.match(lines[j])):
        j += 1
    return j


def _table(layout: Layout, rows: list[str], paragraph: int) -> None:
    for n, row in enumerate(rows):
        if n == 1 or TABLE_RULE.match(row):
            layout.fixed(row)
            continue
        for cell in re.split(r"(?<!\\)(\|)", row):  # cells and the pipes between them
            if cell == "|":
                layout.fixed(cell)
            else:
                layout.segment(cell, paragraph)


def _prose(layout: Layout, block: list[str], paragraph: int) -> None:
    """Lines with their markup fixed; lines that continue a sentence join its segment."""
    pending: list[str] = []  # continuation lines of the current segment

    def flush() -> None:
        if pending:
            joined = " ".join(p.strip() for p in pending)
            ending = pending[-1][len(pending[-1].rstrip()) :]
            layout.segment(joined, paragraph)
            layout.fixed(ending)
            pending.clear()

    for line in block:
        if RULE.match(line):
            flush()
            layout.fixed(line)
            continue
        if pending and not STARTS_ITEM.match(line):
            pending.append(line)
            continue
        flush()
        markup = LINE_MARKUP.match(line).group(1)
        layout.fixed(markup)
        pending.append(line[len(markup) :])
    flush()


# -- HTML ------------------------------------------------------------------------------------


def html_layout(text: str) -> Layout:
    """Tags fixed; the text between block-level tags is one segment, inline tags inside it."""
    layout = Layout("html")
    paragraph, run = 0, ""  # run: visible text and inline tags since the last block tag

    def flush() -> None:
        nonlocal paragraph, run
        if _visible(run):
            layout.segment(run, paragraph)
            paragraph += 1
        else:
            layout.fixed(run)
        run = ""

    for piece, is_markup in _html_pieces(text):
        if is_markup and not _inline_tag(piece):
            flush()
            layout.fixed(piece)
        else:
            run += piece
    flush()
    return layout


def _html_pieces(text: str):
    """(text, is_markup) in order; scripts, styles, code and comments count as markup."""
    pos = 0
    for kept in HTML_KEPT.finditer(text):
        yield from _tags_and_text(text[pos : kept.start()])
        yield kept.group(0), True
        pos = kept.end()
    yield from _tags_and_text(text[pos:])


def _tags_and_text(text: str):
    pos = 0
    for tag in HTML_TAG.finditer(text):
        if tag.start() > pos:
            yield text[pos : tag.start()], False
        yield tag.group(0), True
        pos = tag.end()
    if pos < len(text):
        yield text[pos:], False


def _inline_tag(tag: str) -> bool:
    name = re.match(r"</?\s*([a-zA-Z][a-zA-Z0-9]*)", tag)
    return bool(name) and name.group(1).lower() in INLINE_TAGS


def _visible(run: str) -> bool:
    return bool(HTML_TAG.sub("", run).strip())
