"""`localllm ask`: an answer from your documents, with the passages it came from."""

from __future__ import annotations

import json
import os

import click

from localllm.cli.common import (
    ctx_option,
    engine_option,
    gpu_layers_option,
    model_option,
    quiet_option,
)
from localllm.cli.formatting import write_now


@click.command()
@click.argument("question", nargs=-1, required=True)
@click.option("--in", "sources", multiple=True, metavar="INDEX|PATH",
              help="An index name, or files and folders to search directly "
                   "(repeatable). Default: the index called 'default'.")  # fmt: skip
@model_option
@ctx_option
@gpu_layers_option
@click.option("-k", "--k", "k", type=click.IntRange(1, 50), default=5, show_default=True,
              help="Passages to retrieve.")  # fmt: skip
@click.option(
    "--mode",
    type=click.Choice(["lexical", "dense", "hybrid"]),
    default=None,
    help="Ranking (default: hybrid when the index has vectors, else lexical).",
)
@click.option("--lang", default=None, metavar="CODE",
              help="Answer in this language (default: the question's).")  # fmt: skip
@click.option("--max-tokens", type=click.IntRange(16, 4096), default=384, show_default=True)
@click.option("--json", "as_json", is_flag=True,
              help="Print the answer, citations (with offsets) and scores as JSON.")  # fmt: skip
@engine_option
@quiet_option
def ask(question, sources, model, ctx, gpu_layers, k, mode, lang, max_tokens, as_json,
        engine_name, quiet):  # fmt: skip
    """Answer a question from indexed documents, citing the passages used.

    The answer is in the question's language, with numbered citations [1]
    that map to file:page; a citation of a passage that does not exist is
    removed, and an answer citing none is flagged. When no passage is about
    the question, it says so without calling the model.

    \b
    Examples:
      localllm ask "¿Cuándo se fundó la universidad?"
      localllm ask "What did the 2024 report conclude?" --in informes
      localllm ask "¿Qué plazo da el contrato?" --in contrato.pdf --json
    """
    from localllm.cli.common import command_host
    from localllm.cli.progress import TerminalProgress
    from localllm.config import Settings
    from localllm.documents.languages import check_language_code
    from localllm.index.asking import Asker, AskOptions
    from localllm.index.search import Retriever

    text = " ".join(question).strip()
    if not text:
        raise click.UsageError("give a question")
    settings = Settings.from_env()
    progress = TerminalProgress(quiet=quiet)
    options = AskOptions(k=k, language=check_language_code(lang) if lang else None,
                         max_tokens=max_tokens, mode=mode)  # fmt: skip
    host = command_host(settings, progress, ctx, gpu_layers, engine=engine_name)
    store = _open_sources(settings, progress, list(sources))
    try:
        embed = None if mode == "lexical" else _embedder_of(store, host)  # words need no model
        retriever = Retriever(store, embed)
        if mode in ("dense", "hybrid") and retriever.embed is None:
            raise click.UsageError(f"--mode {mode} needs an index with vectors "
                                   "(index add --embed MODEL)")  # fmt: skip

        def engine_for():
            loaded = host.acquire(model)
            for note in loaded.engine.plan.notes:
                progress.message(note)
            return loaded.engine

        answer = Asker(retriever, engine_for, options).ask(
            text, on_text=None if as_json else write_now)  # fmt: skip
    finally:
        store.close()
        host.close()
    for note in answer.notes:
        progress.message(note)
    if as_json:
        click.echo(json.dumps(_as_json(answer), indent=2, ensure_ascii=False))
    else:
        _print_sources(answer, progress)


def _open_sources(settings, progress, sources):
    from localllm.index.indexing import open_sources

    store, _, failed = open_sources(settings, sources, progress, settings.cache_dir / "spool")
    for path, why in failed:
        progress.message(f"skipped {path}: {why}")
    return store


def _embedder_of(store, host):
    from localllm.engine.embed import EMBED_CTX
    from localllm.index.embedding import embedder

    model = store.meta("embedding_model")
    return embedder(store, host, model, EMBED_CTX) if model else None


def _shown_path(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive, on Windows
        return path
    return path if relative.startswith("..") else relative


def _where(hit) -> str:
    p = hit.passage
    where = _shown_path(p.path)
    return where if p.page is None else f"{where}:{p.page}"


def _print_sources(answer, progress) -> None:
    click.echo("")
    if not answer.found:
        return
    if answer.flagged:
        progress.message("warning: the answer cites no passage, so nothing ties it to the "
                         "documents: check it against the passages below")  # fmt: skip
    shown = answer.cited() or list(enumerate(answer.given, start=1))
    click.echo("\nSources:")
    for number, hit in shown:
        quote = " ".join(hit.passage.text.split())
        quote = quote if len(quote) <= 160 else quote[:157] + "..."
        click.echo(f"  [{number}] {_where(hit)}  \u201c{quote}\u201d")


def _as_json(answer) -> dict:
    def passage(number, hit) -> dict:
        p = hit.passage
        return {"number": number, "path": p.path, "page": p.page, "start": p.start,
                "end": p.end, "quote": p.text, "score": round(hit.score, 6),
                "bm25": hit.bm25, "cosine": hit.cosine, "lexical_rank": hit.lexical_rank,
                "dense_rank": hit.dense_rank}  # fmt: skip

    r = answer.retrieval
    return {
        "question": answer.question,
        "language": answer.language,
        "answer": answer.text,
        "found": answer.found,
        "flagged": answer.flagged,
        "citations": [passage(n, h) for n, h in answer.cited()],
        "passages": [passage(n, h) for n, h in enumerate(answer.given or r.hits, start=1)],
        "removed_citations": answer.check.removed if answer.check else [],
        "retrieval": {
            "mode": r.mode,
            "coverage": round(r.coverage, 4),
            "terms": {t: round(w, 4) for t, w in r.terms.items()},
        },
        "stats": answer.stats,
        "notes": answer.notes,
    }
