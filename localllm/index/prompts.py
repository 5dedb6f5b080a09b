"""What `ask` tells the model, in the question's language; bump PROMPT_VERSION on change."""

from __future__ import annotations

from dataclasses import dataclass

from localllm.documents.languages import LANGUAGE_NAMES

PROMPT_VERSION = 1


@dataclass(frozen=True)
class AskPrompts:
    instructions: str  # the system message
    passages: str  # heads the numbered passages
    question: str  # heads the question
    not_found: str  # said, without the model, when nothing relevant was found


PROMPTS = {
    "en": AskPrompts(
        "Answer the question using only the numbered passages. After each statement, cite "
        "the passage it comes from as [1], [2]. If the passages do not hold the answer, say "
        "that the documents do not say. Be brief.",
        "Passages:",
        "Question:",
        "The documents do not say: no passage in them is about this.",
    ),
    "es": AskPrompts(
        "Responde a la pregunta usando solo los fragmentos numerados. Después de cada "
        "afirmación, cita el fragmento del que sale así: [1], [2]. Si los fragmentos no "
        "contienen la respuesta, di que los documentos no lo dicen. Sé breve.",
        "Fragmentos:",
        "Pregunta:",
        "Los documentos no lo dicen: ningún fragmento trata de esto.",
    ),
}


def prompts_for(language: str) -> AskPrompts:
    """The language's own prompts, or the English ones told to answer in that language."""
    if language in PROMPTS:
        return PROMPTS[language]
    english = PROMPTS["en"]
    name = LANGUAGE_NAMES.get(language)
    if name is None:
        return english
    return AskPrompts(f"{english.instructions} Answer in {name}.", english.passages,
                      english.question, english.not_found)  # fmt: skip


def passage_block(number: int, where: str, text: str) -> str:
    return f"[{number}] ({where})\n{text}"


def messages(language: str, blocks: list[str], question: str) -> list[dict]:
    p = prompts_for(language)
    body = f"{p.passages}\n\n" + "\n\n".join(blocks) + f"\n\n{p.question} {question}"
    return [{"role": "system", "content": p.instructions}, {"role": "user", "content": body}]
