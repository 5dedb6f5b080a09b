"""What the model must not change, swapped for numbered markers before it sees the text.

Inline code, URLs, link targets, e-mail addresses, numbers, HTML tags and
entities, and Markdown emphasis markers each become a marker such as ⟦3⟧; the
translation must hold every marker exactly once, and restoring puts the
original bytes back. A marker that was lost or repeated fails the check, so
the text is translated again (never restored wrongly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN, CLOSE = "\u27e6", "\u27e7"  # ⟦ ⟧: rare in text, kept by the models we tried
MARKER = re.compile(f"{OPEN}(\\d+){CLOSE}")
PROTECTED = re.compile(
    "|".join(
        (
            f"{OPEN}\\d+{CLOSE}",  # a marker-like string in the source is protected too
            r"`+[^`]*?`+",  # inline code
            r"!?\[(?=[^\[\]]*\]\()",  # a Markdown link's or image's opening bracket
            r"\]\([^)\s]*(?:\s+\"[^\"]*\")?\)",  # a Markdown link's target: ](url "title")
            r"<https?://[^>\s]+>",  # an autolink
            r"https?://[^\s<>()\[\]]*[^\s<>()\[\].,;:!?'\"]",  # a bare URL, without end punctuation
            r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # an e-mail address
            r"</?[a-zA-Z][^<>]*>",  # an HTML tag inside the text
            r"&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);",  # an HTML entity
            r"\d+(?:[.,:/'-]\d+)*%?",  # a number, a date, a time
            r"\*{1,3}|(?<!\w)_{1,3}|_{1,3}(?!\w)",  # emphasis markers
        )
    )
)


@dataclass(frozen=True)
class Masked:
    text: str  # what the model sees
    originals: tuple[str, ...]  # marker n stands for originals[n]

    @property
    def letters(self) -> int:
        """Letters left to translate once the markers are taken out."""
        return sum(ch.isalpha() for ch in MARKER.sub("", self.text))


def mask(text: str) -> Masked:
    originals: list[str] = []

    def swap(match: re.Match) -> str:
        originals.append(match.group(0))
        return f"{OPEN}{len(originals) - 1}{CLOSE}"

    return Masked(PROTECTED.sub(swap, text), tuple(originals))


def marker_problem(masked: Masked, translated: str) -> str | None:
    """Why the translation cannot be restored (a marker lost, repeated or invented), or None."""
    found = [int(n) for n in MARKER.findall(translated)]
    wanted = list(range(len(masked.originals)))
    if sorted(found) == wanted:
        return None
    missing = sorted(set(wanted) - set(found))
    if missing:
        shown = ", ".join(repr(masked.originals[n]) for n in missing[:3])
        return f"lost {len(missing)} protected span(s) ({shown})"
    return "repeated or invented protected spans"


def unmask(masked: Masked, translated: str) -> str:
    """The translation with the original text back in place of each marker."""
    return MARKER.sub(lambda m: masked.originals[int(m.group(1))], translated)
