"""Extraction prompts, in the document's language where we have them written (en, es).

Values must be copied as written, so the instruction says so in the language the
model is reading; the answer's shape comes from the grammar, the schema's
meaning from the schema itself, shown in the prompt. Changing a prompt changes
PROMPT_VERSION, which invalidates cached answers.
"""

from __future__ import annotations

import json

from localllm.documents.languages import detect_language
from localllm.extract.schema import ENTITY_HINTS

PROMPT_VERSION = 1

SYSTEM = {
    "en": "You extract information from documents. Copy every value exactly as it is written "
    "in the text. Never add anything the text does not say. Answer with JSON only.",
    "es": "Extraes información de documentos. Copia cada valor exactamente como aparece en el "
    "texto. Nunca añadas nada que el texto no diga. Responde solo con JSON.",
}
ENTITIES = {
    "en": "List every named entity in the text above, each with its type:\n{types}",
    "es": "Enumera todas las entidades con nombre del texto anterior, cada una con su tipo:\n"
    "{types}",
}
FIELDS = {
    "en": "Fill in this JSON schema from the text above. Use null where the text does not "
    "say:\n{schema}",
    "es": "Rellena este esquema JSON con datos del texto anterior. Usa null donde el texto no "
    "lo diga:\n{schema}",
}
TEXT = {"en": "Text:\n\n{text}", "es": "Texto:\n\n{text}"}


def language_of(text: str) -> str:
    """The prompt language for this text: its own if written out here, else English."""
    lang = detect_language(text[:5000])
    return lang if lang in SYSTEM else "en"


def messages(language: str, part: str, options) -> list[dict]:
    if options.schema is None:
        types = "\n".join(f"- {t}: {ENTITY_HINTS.get(t, t)}" for t in options.entities)
        task = ENTITIES[language].format(types=types)
    else:
        task = FIELDS[language].format(schema=json.dumps(options.schema, ensure_ascii=False))
    return [
        {"role": "system", "content": SYSTEM[language]},
        {"role": "user", "content": TEXT[language].format(text=part) + "\n\n" + task},
    ]
