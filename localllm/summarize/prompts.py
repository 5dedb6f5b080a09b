"""Summarization prompts in the document's own language.

Written-out prompts for the languages our users write most; for any other
language the English prompt asks for the answer in that language by name.
Every prompt asks for facts from the text only. Changing a prompt changes
PROMPT_VERSION, which invalidates cached chunk summaries; so does changing what
is kept of a reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from localllm.documents.languages import LANGUAGE_NAMES

# 2: summaries cut at their budget end at a whole sentence; 3: the part prompt's instruction
# comes before the part
PROMPT_VERSION = 3


@dataclass(frozen=True)
class PromptSet:
    system: str
    # {text}: summarize one part of a longer document. The instruction comes first, so every
    # part's prompt up to its text is the same: an engine computes it once per slot, and
    # each part prefills its own text and a few template tokens, not the instruction again.
    chunk: str
    combine: str  # {text}: merge partial summaries into one
    final: str  # {text} {length} {style}: the summary the user reads
    lengths: dict[str, str]
    styles: dict[str, str]


ENGLISH = PromptSet(
    system="You summarize documents faithfully. Use only facts stated in the text; never add "
    "outside knowledge or opinions.",
    chunk="Summarize this part of a longer document in a few sentences, keeping names, "
    "numbers, dates and key facts:\n\n{text}",
    combine="Here are summaries of consecutive parts of one document:\n\n{text}\n\nMerge them "
    "into one shorter summary that keeps the key facts, names and numbers.",
    final="{text}\n\nWrite a {length} summary of the text above, {style}. Use only facts "
    "from the text.",
    lengths={"short": "short (2-3 sentences)", "medium": "medium-length (one paragraph)",
             "long": "detailed (several paragraphs)"},
    styles={"paragraph": "as flowing prose", "bullets": "as a bulleted list of key points"},
)  # fmt: skip

SPANISH = PromptSet(
    system="Resumes documentos con fidelidad. Usa solo hechos que aparecen en el texto; nunca "
    "añadas conocimientos externos ni opiniones. Escribe siempre en español.",
    chunk="Resume en unas pocas frases esta parte de un documento más largo, conservando "
    "nombres, cifras, fechas y hechos clave:\n\n{text}",
    combine="Estos son resúmenes de partes consecutivas de un mismo documento:\n\n{text}\n\n"
    "Fúndelos en un único resumen más breve que conserve los hechos, nombres y cifras clave.",
    final="{text}\n\nEscribe un resumen {length} del texto anterior, {style}. Usa solo hechos "
    "del texto.",
    lengths={"short": "breve (2 o 3 frases)", "medium": "de extensión media (un párrafo)",
             "long": "detallado (varios párrafos)"},
    styles={"paragraph": "en prosa continua", "bullets": "como una lista de puntos clave"},
)  # fmt: skip

FRENCH = PromptSet(
    system="Tu résumes des documents fidèlement. N'utilise que les faits présents dans le "
    "texte ; n'ajoute jamais de connaissances extérieures ni d'opinions. Écris en français.",
    chunk="Résume en quelques phrases cette partie d'un document plus long, en gardant les "
    "noms, chiffres, dates et faits essentiels :\n\n{text}",
    combine="Voici les résumés de parties consécutives d'un même document :\n\n{text}\n\n"
    "Fusionne-les en un seul résumé plus court qui garde les faits, noms et chiffres clés.",
    final="{text}\n\nÉcris un résumé {length} du texte ci-dessus, {style}. N'utilise que des "
    "faits du texte.",
    lengths={"short": "court (2 ou 3 phrases)", "medium": "de longueur moyenne (un paragraphe)",
             "long": "détaillé (plusieurs paragraphes)"},
    styles={"paragraph": "en prose continue", "bullets": "sous forme de liste à puces"},
)  # fmt: skip

GERMAN = PromptSet(
    system="Du fasst Dokumente getreu zusammen. Verwende nur Fakten aus dem Text; füge nie "
    "externes Wissen oder Meinungen hinzu. Schreibe auf Deutsch.",
    chunk="Fasse diesen Teil eines längeren Dokuments in wenigen Sätzen zusammen und behalte "
    "Namen, Zahlen, Daten und wichtige Fakten bei:\n\n{text}",
    combine="Hier sind Zusammenfassungen aufeinanderfolgender Teile eines Dokuments:\n\n{text}"
    "\n\nFüge sie zu einer kürzeren Zusammenfassung mit den wichtigsten Fakten zusammen.",
    final="{text}\n\nSchreibe eine {length} Zusammenfassung des obigen Textes, {style}. "
    "Verwende nur Fakten aus dem Text.",
    lengths={"short": "kurze (2-3 Sätze)", "medium": "mittellange (ein Absatz)",
             "long": "ausführliche (mehrere Absätze)"},
    styles={"paragraph": "als Fließtext", "bullets": "als Stichpunktliste"},
)  # fmt: skip

PORTUGUESE = PromptSet(
    system="Você resume documentos com fidelidade. Use apenas fatos presentes no texto; nunca "
    "acrescente conhecimento externo nem opiniões. Escreva em português.",
    chunk="Resuma em poucas frases esta parte de um documento mais longo, mantendo nomes, "
    "números, datas e fatos principais:\n\n{text}",
    combine="Estes são resumos de partes consecutivas de um mesmo documento:\n\n{text}\n\n"
    "Junte-os num único resumo mais curto que mantenha os fatos, nomes e números principais.",
    final="{text}\n\nEscreva um resumo {length} do texto acima, {style}. Use apenas fatos do "
    "texto.",
    lengths={"short": "curto (2 ou 3 frases)", "medium": "de tamanho médio (um parágrafo)",
             "long": "detalhado (vários parágrafos)"},
    styles={"paragraph": "em prosa corrida", "bullets": "como uma lista de pontos-chave"},
)  # fmt: skip

WRITTEN = {"en": ENGLISH, "es": SPANISH, "fr": FRENCH, "de": GERMAN, "pt": PORTUGUESE}


def prompts_for(lang: str) -> PromptSet:
    """The prompt set for a language code; English asking for that language otherwise."""
    if lang in WRITTEN:
        return WRITTEN[lang]
    name = LANGUAGE_NAMES.get(lang, f"the language with code {lang!r}")
    suffix = f" Write in {name}."
    return PromptSet(
        system=ENGLISH.system + suffix,
        chunk=f"{suffix.strip()} {ENGLISH.chunk}",  # before the part, as the instruction is
        combine=ENGLISH.combine + suffix,
        final=ENGLISH.final + suffix,
        lengths=ENGLISH.lengths,
        styles=ENGLISH.styles,
    )
