"""`localllm translate`: whole documents, any length, structure kept, offline."""

from __future__ import annotations

import json
from pathlib import Path

import click

from localllm.cli.common import (
    ctx_option,
    engine_option,
    gpu_layers_option,
    load_model,
    mark_with,
    model_option,
    quiet_option,
    watermark_for_command,
    watermark_option,
)


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="LANG",
    help="Language to translate into: a code such as en, es, fr, de, pt, ca.",
)
@click.option("--from", "source", default="auto", show_default=True, metavar="LANG",
              help="The document's language, or auto to detect it.")  # fmt: skip
@model_option
@click.option("--glossary", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="TSV (term<TAB>translation) or TOML of required translations.")  # fmt: skip
@click.option(
    "--tries",
    type=click.IntRange(1, 10),
    default=3,
    show_default=True,
    help="Attempts per paragraph before it is kept untranslated and reported.",
)
@ctx_option
@gpu_layers_option
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the translation here (a folder when several files are given).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print translation, languages, untranslated paragraphs and stats as JSON.",
)
@click.option("--no-cache", is_flag=True, help="Do not reuse or store translated chunks.")
@click.option("--parallel", type=click.IntRange(1, 256), default=None, metavar="N",
              help="Runs of chunks translated at once (each keeps its context). Default: a "
              "remote engine's slot count, else 1.")  # fmt: skip
@watermark_option
@engine_option
@quiet_option
def translate(files, target, source, model, glossary, tries, ctx, gpu_layers, output, as_json,
              no_cache, parallel, watermark, engine_name, quiet):  # fmt: skip
    """Translate documents of any length, keeping their structure, offline.

    Markdown keeps its headings, lists, tables, links and emphasis; code, URLs
    and numbers pass through untouched; HTML keeps its tags. Each translated
    part is checked (language, markers, glossary) and tried again when it
    fails; what still fails is kept in the source language and reported.

    \b
    Examples:
      localllm translate informe.md --to en -o report.md
      localllm translate README.md --to es --glossary terms.tsv
      cat notes.txt | localllm translate - --to fr
      localllm translate docs/*.md --to de -o docs-de/
      localllm translate page.html --from es --to pt --json
      localllm translate libro.md --to en --engine gpu --parallel 16
    """
    from localllm.cli.progress import TerminalProgress
    from localllm.config import Settings
    from localllm.documents.languages import check_language_code
    from localllm.documents.readers import open_document
    from localllm.translate.glossary import Glossary, load_glossary
    from localllm.translate.pipeline import TranslateOptions

    target = check_language_code(target)
    source = source if source == "auto" else check_language_code(source)
    terms = load_glossary(glossary) if glossary else Glossary()
    settings = Settings.from_env()
    progress = TerminalProgress(quiet=quiet)
    docs: list = []
    try:
        for name in files:  # every input checked before any work
            docs.append(open_document(name, settings.cache_dir / "spool"))
        targets = _output_paths(docs, output)
        options = TranslateOptions(
            target, source, tries, terms, watermark=watermark_for_command(settings, watermark)
        )
        _translate_all(settings, docs, targets, progress, options, model=model, ctx=ctx,
                       gpu_layers=gpu_layers, use_cache=not no_cache, as_json=as_json,
                       engine_name=engine_name, parallel=parallel)  # fmt: skip
    finally:
        for doc in docs:
            doc.discard()


def _output_paths(docs, output: Path | None) -> list[Path | None]:
    """Where each translation goes: stdout (None), the -o file, or a file in the -o folder."""
    if output is None:
        return [None] * len(docs)
    if len(docs) == 1 and not output.is_dir():
        return [output]
    if output.exists() and not output.is_dir():
        raise click.UsageError(f"-o {output}: several files need a folder to write into")
    names = [Path(d.name).name if d.name != "stdin" else "stdin.txt" for d in docs]
    if len(set(names)) < len(names):
        raise click.UsageError("two inputs have the same file name: translate them separately")
    return [output / name for name in names]


def _translate_all(settings, docs, targets, progress, options, *, model, ctx, gpu_layers,
                   use_cache, as_json, engine_name, parallel) -> None:  # fmt: skip
    from dataclasses import replace

    from localllm.documents.cache import CallCache
    from localllm.engine.base import facts_of
    from localllm.store.integrity import write_text_atomically
    from localllm.translate.pipeline import Translator

    if options.source == "auto":
        from localllm.documents.languages import prepare_detection

        prepare_detection()  # beside the model's load, not after it
    resolved, engine = load_model(settings, model, ctx, progress, gpu_layers,
                                  engine=engine_name, parallel=parallel or 1)  # fmt: skip
    mark_with(settings, options.watermark, resolved, engine)
    facts = facts_of(engine)
    options = replace(options, parallel=parallel or facts.parallel)
    if facts.where != "this machine":
        progress.message(f"translating with {resolved.name}: text goes to {facts.where}")
    translator = Translator(engine, getattr(engine, "cache_id", resolved.name),
                            CallCache(settings.cache_dir / "translations", use_cache),
                            options, progress)  # fmt: skip
    payload = []
    try:
        for doc, target in zip(docs, targets, strict=True):
            result = translator.translate(doc)
            for warning in doc.warnings:
                progress.message(warning)
            if result.untranslated:
                progress.message(f"{doc.name}: {len(result.untranslated)} part(s) kept in the "
                                 "source language (--json lists them)")  # fmt: skip
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomically(target, result.text)
            payload.append(
                {
                    "document": result.document,
                    "from": result.source,
                    "to": result.target,
                    "translation": result.text,
                    "untranslated": result.untranslated,
                    "stats": result.stats,
                }
            )
            if target is None and not as_json:
                if len(docs) > 1:
                    click.echo(f"## {doc.name}\n")
                click.echo(result.text, nl=not result.text.endswith("\n"))
    finally:
        engine.close()
    if as_json:
        click.echo(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2,
                              ensure_ascii=False))  # fmt: skip
