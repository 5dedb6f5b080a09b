"""Translation prompts, written in the source text's language, naming both languages in it.

A model follows an instruction best in the language it is reading, so a Spanish
document is asked for in Spanish ("Traduce del español al inglés"), and so on for
the languages our users write most (es, en, fr, de, pt, ca); any other source
language gets the English prompt. Changing a prompt changes PROMPT_VERSION,
which invalidates cached translations.
"""

from __future__ import annotations

from dataclasses import dataclass

from localllm.documents.languages import LANGUAGE_NAMES

PROMPT_VERSION = 1


@dataclass(frozen=True)
class TranslationPrompts:
    system: str  # {source} {target}: who the model is and the rules it keeps
    glossary: str  # {terms}: the required translations, one "term → translation" per line
    stricter: str  # {target} {problem}: appended when an earlier answer failed a check
    names: dict[str, str]  # language names in the prompt's own language


ENGLISH = TranslationPrompts(
    system="You are a professional translator. Translate the user's text from {source} into "
    "{target}. Keep the meaning, tone and formatting. Each paragraph of the text is one "
    "paragraph of the translation, in the same order, separated by a blank line. Copy every "
    "marker such as \u27e60\u27e7 unchanged, in the right place. Write only the translation.",
    glossary="Use these translations for these terms:\n{terms}",
    stricter="Your previous answer was rejected: {problem}. Write the whole text in {target}, "
    "with the same paragraphs and every marker.",
    names=LANGUAGE_NAMES,
)  # fmt: skip

SPANISH = TranslationPrompts(
    system="Eres un traductor profesional. Traduce el texto del usuario del {source} al "
    "{target}. Conserva el sentido, el tono y el formato. Cada párrafo del texto es un párrafo "
    "de la traducción, en el mismo orden, separados por una línea en blanco. Copia sin cambios "
    "cada marca como \u27e60\u27e7, en su lugar. Escribe solo la traducción.",
    glossary="Usa estas traducciones para estos términos:\n{terms}",
    stricter="Tu respuesta anterior no era válida: {problem}. Escribe todo el texto en "
    "{target}, con los mismos párrafos y todas las marcas.",
    names={"en": "inglés", "es": "español", "fr": "francés", "de": "alemán", "pt": "portugués",
           "it": "italiano", "ca": "catalán", "gl": "gallego", "eu": "euskera", "nl": "neerlandés",
           "zh": "chino", "ja": "japonés", "ar": "árabe", "ru": "ruso"},
)  # fmt: skip

FRENCH = TranslationPrompts(
    system="Tu es un traducteur professionnel. Traduis le texte de l'utilisateur. Langue "
    "source : {source}. Langue cible : {target}. Garde le sens, le ton et la mise en "
    "forme. Chaque paragraphe du texte est un paragraphe de la traduction, dans le "
    "même ordre, séparés par une ligne vide. Recopie sans changement chaque marque "
    "comme \u27e60\u27e7, à sa place. Écris seulement la traduction.",
    glossary="Utilise ces traductions pour ces termes :\n{terms}",
    stricter="Ta réponse précédente a été refusée : {problem}. Écris tout le texte en "
    "{target}, avec les mêmes paragraphes et toutes les marques.",
    names={"en": "anglais", "es": "espagnol", "fr": "français", "de": "allemand",
           "pt": "portugais", "it": "italien", "ca": "catalan", "nl": "néerlandais"},
)  # fmt: skip

GERMAN = TranslationPrompts(
    system="Du bist ein professioneller Übersetzer. Übersetze den Text des Nutzers von "
    "{source} nach {target}. Behalte Bedeutung, Ton und Formatierung bei. Jeder Absatz des "
    "Textes ist ein Absatz der Übersetzung, in derselben Reihenfolge, getrennt durch eine "
    "Leerzeile. Übernimm jede Markierung wie \u27e60\u27e7 unverändert an ihrer Stelle. "
    "Schreibe nur die Übersetzung.",
    glossary="Verwende diese Übersetzungen für diese Begriffe:\n{terms}",
    stricter="Deine vorige Antwort wurde abgelehnt: {problem}. Schreibe den ganzen Text auf "
    "{target}, mit denselben Absätzen und allen Markierungen.",
    names={"en": "Englisch", "es": "Spanisch", "fr": "Französisch", "de": "Deutsch",
           "pt": "Portugiesisch", "it": "Italienisch", "nl": "Niederländisch"},
)  # fmt: skip

PORTUGUESE = TranslationPrompts(
    system="Você é um tradutor profissional. Traduza o texto do usuário do {source} para o "
    "{target}. Mantenha o sentido, o tom e a formatação. Cada parágrafo do texto é um "
    "parágrafo da tradução, na mesma ordem, separados por uma linha em branco. Copie sem "
    "alterar cada marca como \u27e60\u27e7, no seu lugar. Escreva apenas a tradução.",
    glossary="Use estas traduções para estes termos:\n{terms}",
    stricter="A sua resposta anterior foi recusada: {problem}. Escreva todo o texto em "
    "{target}, com os mesmos parágrafos e todas as marcas.",
    names={"en": "inglês", "es": "espanhol", "fr": "francês", "de": "alemão", "pt": "português",
           "it": "italiano", "ca": "catalão", "gl": "galego"},
)  # fmt: skip

CATALAN = TranslationPrompts(
    system="Ets un traductor professional. Tradueix el text de l'usuari. Llengua d'origen: "
    "{source}. Llengua de destinació: {target}. Conserva el sentit, el to i el "
    "format. Cada paràgraf del text és un paràgraf de la traducció, en el mateix "
    "ordre, separats per una línia en blanc. Copia sense canvis cada marca com "
    "\u27e60\u27e7, al seu lloc. Escriu només la traducció.",
    glossary="Fes servir aquestes traduccions per a aquests termes:\n{terms}",
    stricter="La teva resposta anterior no era vàlida: {problem}. Escriu tot el text en "
    "{target}, amb els mateixos paràgrafs i totes les marques.",
    names={"en": "anglès", "es": "castellà", "fr": "francès", "de": "alemany",
           "pt": "portuguès", "it": "italià", "ca": "català"},
)  # fmt: skip

WRITTEN = {"en": ENGLISH, "es": SPANISH, "fr": FRENCH, "de": GERMAN, "pt": PORTUGUESE,
           "ca": CATALAN}  # fmt: skip


@dataclass(frozen=True)
class Instructions:
    """The system message for one source -> target pair, and the retry wording."""

    prompts: TranslationPrompts
    source: str
    target: str

    def name(self, code: str) -> str:
        return self.prompts.names.get(code) or LANGUAGE_NAMES.get(code, code)

    def system(self, glossary_terms: list[tuple[str, str]]) -> str:
        text = self.prompts.system.format(source=self.name(self.source),
                                          target=self.name(self.target))  # fmt: skip
        if glossary_terms:
            terms = "\n".join(f"{s} \u2192 {t}" for s, t in glossary_terms)
            text += "\n\n" + self.prompts.glossary.format(terms=terms)
        return text

    def stricter(self, problem: str) -> str:
        return self.prompts.stricter.format(target=self.name(self.target), problem=problem)


def instructions_for(source: str, target: str) -> Instructions:
    return Instructions(WRITTEN.get(source, ENGLISH), source, target)
