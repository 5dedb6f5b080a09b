"""`localllm extract`: entities or the fields of a schema, as data, grounded in the source."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click

from localllm.cli.common import (
    ctx_option,
    engine_option,
    gpu_layers_option,
    load_model,
    model_option,
    quiet_option,
)


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--entities", default=None, metavar="T,...",
              help="Entity types to find (default: person,org,place,date,money).")  # fmt: skip
@click.option("--schema", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A JSON schema (an object) to fill in instead of entities.")  # fmt: skip
@model_option
@ctx_option
@gpu_layers_option
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the results to this file instead of stdout.")  # fmt: skip
@click.option("--jsonl", "as_jsonl", is_flag=True, help="One JSON object per document and line.")
@click.option("--csv", "as_csv", is_flag=True,
              help="CSV: one row per entity (or per document with --schema).")  # fmt: skip
@click.option(
    "--parallel",
    type=click.IntRange(1, 256),
    default=None,
    metavar="N",
    help="Parts asked at once. Default: a remote engine's slot count, else 1.",
)
@click.option("--no-cache", is_flag=True, help="Do not reuse or store answers.")
@engine_option
@quiet_option
def extract(files, entities, schema, model, ctx, gpu_layers, output, as_jsonl, as_csv, parallel,
            no_cache, engine_name, quiet):  # fmt: skip
    """Extract named entities, or the fields of a JSON schema, from documents.

    Every answer is generated under a grammar made from the schema, so it is
    always valid; long documents are done in parts and merged. Each value is
    looked for in the text (exact, then ignoring case and accents, then fuzzy)
    and carries its character offsets; values not found are dropped and
    counted as invented. Fields the text does not give are null.

    \b
    Examples:
      localllm extract contrato.pdf
      localllm extract news/*.txt --entities person,org --csv -o people.csv
      localllm extract invoice.txt --schema invoice.schema.json
      cat mail.txt | localllm extract - --entities person,email,date --jsonl
    """
    from localllm.cli.progress import TerminalProgress
    from localllm.config import Settings
    from localllm.documents.readers import open_document
    from localllm.extract.pipeline import ExtractOptions
    from localllm.extract.schema import entity_types, load_schema

    if as_jsonl and as_csv:
        raise click.UsageError("--jsonl and --csv: give one")
    if schema and entities:
        raise click.UsageError("--schema and --entities: give one")
    options = ExtractOptions(entities=entity_types(entities),
                             schema=load_schema(schema) if schema else None)  # fmt: skip
    settings = Settings.from_env()
    progress = TerminalProgress(quiet=quiet)
    docs: list = []
    try:
        for name in files:
            docs.append(open_document(name, settings.cache_dir / "spool"))
        results = _extract_all(settings, docs, progress, options, model=model, ctx=ctx,
                               gpu_layers=gpu_layers, parallel=parallel, use_cache=not no_cache,
                               engine_name=engine_name)  # fmt: skip
    finally:
        for doc in docs:
            doc.discard()
    _deliver(results, output, "csv" if as_csv else "jsonl" if as_jsonl else "json",
             schema_mode=options.schema is not None)  # fmt: skip


def _extract_all(settings, docs, progress, options, *, model, ctx, gpu_layers, parallel,
                 use_cache, engine_name) -> list:  # fmt: skip
    from dataclasses import replace

    from localllm.documents.cache import CallCache
    from localllm.engine.base import facts_of
    from localllm.extract.pipeline import Extractor

    resolved, engine = load_model(settings, model, ctx, progress, gpu_layers,
                                  engine=engine_name, parallel=parallel or 1)  # fmt: skip
    facts = facts_of(engine)
    options = replace(options, parallel=parallel or facts.parallel)
    if facts.where != "this machine":
        progress.message(f"extracting with {resolved.name}: text goes to {facts.where}")
    results = []
    try:
        extractor = Extractor(engine, getattr(engine, "cache_id", resolved.name),
                              CallCache(settings.cache_dir / "extractions", use_cache), options,
                              progress)  # fmt: skip
        for doc in docs:
            result = extractor.extract(doc)
            for warning in doc.warnings:
                progress.message(warning)
            if result.stats["invented"]:
                progress.message(f"{doc.name}: {result.stats['invented']} value(s) not found in "
                                 "the text were dropped")  # fmt: skip
            results.append(result)
    finally:
        engine.close()
    return results


def _payload(result) -> dict:
    out = {"document": result.document, **result.data}
    if result.found:
        out["found"] = result.found
    if result.conflicts:
        out["conflicts"] = result.conflicts
    out["stats"] = result.stats
    return out


def _deliver(results, output: Path | None, form: str, *, schema_mode: bool) -> None:
    if form == "csv":
        text = _csv(results, schema_mode)
    elif form == "jsonl":
        text = "".join(json.dumps(_payload(r), ensure_ascii=False) + "\n" for r in results)
    else:
        payload = [_payload(r) for r in results]
        text = json.dumps(payload[0] if len(payload) == 1 else payload, indent=2,
                          ensure_ascii=False) + "\n"  # fmt: skip
    if output is None:
        click.echo(text, nl=False)
        return
    from localllm.store.integrity import write_text_atomically

    write_text_atomically(output, text)


def _csv(results, schema_mode: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if not schema_mode:
        writer.writerow(["document", "type", "text", "start", "end", "mentions"])
        for r in results:
            for e in r.data["entities"]:
                first = e["mentions"][0]
                writer.writerow([r.document, e["type"], e["text"], first["start"], first["end"],
                                 len(e["mentions"])])  # fmt: skip
        return buffer.getvalue()
    columns = list(dict.fromkeys(k for r in results for k in r.data))
    writer.writerow(["document", *columns])
    for r in results:
        cells = [r.data.get(c) for c in columns]
        writer.writerow(
            [
                r.document,
                *(
                    v
                    if isinstance(v, str | int | float) or v is None
                    else json.dumps(v, ensure_ascii=False)
                    for v in cells
                ),
            ]
        )
    return buffer.getvalue()
