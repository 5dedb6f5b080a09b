"""Language codes, names and detection (py3langid, offline), for every document job."""

from __future__ import annotations

import functools
import threading

from localllm.errors import DocumentError

LANGUAGE_NAMES = {
    "en": "English", "es": "Spanish", "fr": "French", "de": "German", "pt": "Portuguese",
    "it": "Italian", "nl": "Dutch", "ca": "Catalan", "pl": "Polish", "ru": "Russian",
    "uk": "Ukrainian", "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "ar": "Arabic",
    "tr": "Turkish", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish",
    "cs": "Czech", "el": "Greek", "hi": "Hindi", "gl": "Galician", "eu": "Basque",
    "ro": "Romanian", "hu": "Hungarian", "id": "Indonesian", "vi": "Vietnamese", "he": "Hebrew",
}  # fmt: skip


_DETECTOR_LOCK = threading.Lock()  # one load of the detector, whichever thread asks first


def detect_language(sample: str) -> str:
    """ISO 639-1 code of the sample's language."""
    lang, _ = _detector().classify(sample[:5000])
    return lang


def prepare_detection() -> None:
    """Load the detector (about half a second) in the background, beside something
    slower such as a model loading, so that detect_language answers at once."""
    threading.Thread(target=_detector, name="localllm-langid", daemon=True).start()


def _detector():
    with _DETECTOR_LOCK:
        return _identifier(None)


def check_language_code(code: str) -> str:
    """The code, lower-cased, if we know the language; otherwise a one-line error."""
    code = code.strip().lower()
    if code not in LANGUAGE_NAMES:
        raise DocumentError(f"unknown language code {code!r}: use one of "
                            f"{', '.join(sorted(LANGUAGE_NAMES))}")  # fmt: skip
    return code


@functools.cache
def _identifier(languages: tuple[str, ...] | None):
    """An identifier choosing among these languages only, or among all it knows (None);
    one per set: classify is thread-safe."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if languages is not None:
        ident.set_languages(list(languages))
    return ident


def leans_to(text: str, wanted: str, other: str) -> float:
    """How much more likely text is in `wanted` than in `other` (a probability, 0..1).

    Choosing between the two languages in play is far more reliable on a short
    passage than naming its language among a hundred."""
    lang, prob = _identifier(tuple(sorted((wanted, other)))).classify(text[:5000])
    return prob if lang == wanted else 1.0 - prob


def language_of_question(text: str) -> str:
    """The language of a short text (a question), chosen among the languages we name:
    on a dozen words, a choice among a hundred languages is mostly noise."""
    lang, _ = _identifier(tuple(sorted(LANGUAGE_NAMES))).classify(text[:5000])
    return lang
