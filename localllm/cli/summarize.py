"""`localllm summarize`: offline summaries of files of any length."""

from __future__ import annotations

import json
import sys
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
@model_option
@click.option("--length", type=click.Choice(["short", "medium", "long"]), default="medium",
              show_default=True)  # fmt: skip
@click.option("--style", type=click.Choice(["paragraph", "bullets"]), default="paragraph",
              show_default=True)  # fmt: skip
@click.option(
    "--lang",
    default="auto",
    show_default=True,
    help="Prompt and summary language: auto (the document's) or a code: en, es…",
)
@ctx_option
@gpu_layers_option
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write the summary to this file instead of stdout.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print summary, language, parts and stats.")
@click.option("--jsonl", "as_jsonl", is_flag=True,
              help="One JSON object per document and line (-o writes them to a file).")  # fmt: skip
@click.option("--combine", is_flag=True, help="One summary of all files together.")
@click.option("--no-cache", is_flag=True, help="Do not reuse or store partial summaries.")
@click.option("--parallel", type=click.IntRange(min=1, max=256), default=None, metavar="N",
              help="Part summaries in flight at once. Default: a remote engine's slot count; "
              "on this machine, for long inputs, as many as fit in free RAM up to 8, batched "
              "in one llama.cpp context.")  # fmt: skip
@click.option("--flash-attn/--no-flash-attn", default=True, show_default=True,
              help="llama.cpp's flash attention on this machine: it prefills long parts "
              "faster, on CPUs too.")  # fmt: skip
@click.option("--part-tokens", type=click.IntRange(min=64), default=None, metavar="N",
              help="Tokens per part of a long document. Default: from the model's shape "
              "(shorter parts where attention is dear next to the weights), at most the "
              "window; the window on a GPU.")  # fmt: skip
@watermark_option
@engine_option
@quiet_option
def summarize(files, model, length, style, lang, ctx, gpu_layers, output, as_json, as_jsonl,
              combine, no_cache, parallel, flash_attn, part_tokens, watermark, engine_name,
              quiet):  # fmt: skip
    """Summarize documents of any length, in their own language, offline.

    FILE may be text, Markdown, HTML or PDF (with the pdf extra), or - for
    stdin. Long documents are summarized in parts that fit the model's window,
    then merged; an interrupted run resumes from its cached parts.

    \b
    Examples:
      localllm summarize report.txt
      localllm summarize informe.pdf --length short --style bullets
      curl -s https://example.org | localllm summarize - --lang en
      localllm summarize a.md b.md --combine -o summary.md
      localllm summarize informe.pdf --engine gpu --parallel 16
      localllm summarize docs/*.pdf --engine gpu --parallel 32 --jsonl -o out.jsonl
    """
    from localllm.cli.progress import TerminalProgress
    from localllm.config import Settings
    from localllm.documents.readers import open_document
    from localllm.summarize.pipeline import SummaryOptions

    if as_json and as_jsonl:
        raise click.UsageError("--json and --jsonl: give one")
    settings = Settings.from_env()
    progress = TerminalProgress(quiet=quiet)
    spool = settings.cache_dir / "spool"
    docs: list = []
    try:
        for name in files:  # every input checked before any work
            docs.append(open_document(name, spool))
        inputs = docs
        if combine and len(docs) > 1:
            from localllm.documents.readers import combine_documents

            inputs = [combine_documents(docs, spool)]
            docs.append(inputs[0])
        options = SummaryOptions(length, style, lang, part_tokens,
                                 watermark_for_command(settings, watermark))  # fmt: skip
        _summarize_all(settings, inputs, progress, model=model, ctx=ctx, gpu_layers=gpu_layers,
                       options=options, use_cache=not no_cache, output=output, as_json=as_json,
                       as_jsonl=as_jsonl, parallel=parallel, flash_attn=flash_attn,
                       engine_name=engine_name)  # fmt: skip
    finally:
        for doc in docs:
            doc.discard()  # spooled stdin and pipes are not kept


def _in_process_slots(docs, ctx: int | None) -> tuple[int, int | None]:
    """Slots for the part summaries, and each one's window on a CPU (None: the plan's).

    Batch (AUTO_SLOTS) when the inputs likely take more than one call: more bytes than two
    per token of the window (a token is rarely under two bytes of text). Where they surely
    do (more than MOST_BYTES_PER_TOKEN per token), every call is a part or a merge, and
    slots of AUTO_SLOT_CTX hold them."""
    from localllm.cli.common import AUTO_SLOTS
    from localllm.engine.plan import DEFAULT_CTX

    window = ctx or DEFAULT_CTX
    size = sum(doc.path.stat().st_size for doc in docs if doc.path.exists())
    if size <= 2 * window:
        return 1, None
    surely_long = ctx is None and size > MOST_BYTES_PER_TOKEN * window
    return AUTO_SLOTS, AUTO_SLOT_CTX if surely_long else None


# Each automatic slot's window on a CPU for inputs far longer than a window. Its calls are
# short: a part (sizing.py picks ~1-3k tokens on a CPU) or a merge of part summaries. Eight
# slots of a full 8k window held 1.5 GB of KV cache for SmolLM2-135M, zeroed at load (3-15 s
# on a VM that faults memory in lazily), for under 1,300 tokens used in each.
AUTO_SLOT_CTX = 4096
MOST_BYTES_PER_TOKEN = 5  # prose in the languages we serve: 2.5-4.5 bytes a token


def _summarize_all(settings, docs, progress, *, model, ctx, gpu_layers, options, use_cache,
                   output, as_json, as_jsonl, parallel, flash_attn,
                   engine_name) -> None:  # fmt: skip
    from localllm.documents.cache import CallCache
    from localllm.engine.base import facts_of
    from localllm.summarize.pipeline import Summarizer

    if options.lang == "auto":
        from localllm.documents.languages import prepare_detection

        prepare_detection()  # beside the model's load, not after it
    slots, slot_ctx = (parallel, None) if parallel else _in_process_slots(docs, ctx)
    resolved, engine = load_model(settings, model, ctx, progress, gpu_layers, engine=engine_name,
                                  parallel=slots, flash_attn=flash_attn,
                                  cpu_slot_ctx=slot_ctx)  # fmt: skip
    mark_with(settings, options.watermark, resolved, engine)
    facts = facts_of(engine)
    parallel = parallel or facts.parallel
    if facts.where != "this machine":
        progress.message(f"summarizing with {resolved.name}: text goes to {facts.where}, "
                         f"{parallel} part(s) at once")  # fmt: skip
    elif parallel > 1:
        attention = "on" if getattr(engine, "flash_attention", False) else "off"
        progress.message(f"summarizing with {resolved.name} on this machine: {parallel} parts "
                         f"at once in one batch, a {engine.n_ctx}-token window each, flash "
                         f"attention {attention}")  # fmt: skip

    # Cached parts are keyed on the model that wrote them: on a remote engine, the served
    # model and its address, not the label the user typed.
    model_id = getattr(engine, "cache_id", resolved.name)

    def summarizer_for(reporter, limiter=None) -> Summarizer:
        return Summarizer(
            engine, model_id, CallCache(settings.cache_dir / "summaries", use_cache),
            options, reporter, settings.cache_dir / "spool", parallel=parallel, limiter=limiter,
        )  # fmt: skip

    stream = output is None and not as_json and not as_jsonl
    results = []
    if len(docs) > 1 and parallel > 1:  # side by side, sharing the engine's slots
        from localllm.summarize.many import summarize_documents

        for doc, result in zip(docs, summarize_documents(docs, summarizer_for, parallel,
                                                         progress), strict=False):  # fmt: skip
            _report(doc, progress)
            if stream:
                click.echo(f"## {doc.name}\n\n{result.summary}\n")
            results.append(result)
    else:
        summarizer = summarizer_for(progress)
        for doc in docs:
            if stream and len(docs) > 1:
                click.echo(f"## {doc.name}\n")
            results.append(summarizer.summarize(doc, on_token=_echo if stream else None))
            _report(doc, progress)
            if stream:
                click.echo("\n" if len(docs) > 1 else "")
    _deliver(results, output, as_json, as_jsonl)
    engine.close()


def _report(doc, progress) -> None:
    for warning in doc.warnings:
        progress.message(warning)


def _echo(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _deliver(results, output: Path | None, as_json: bool, as_jsonl: bool = False) -> None:
    payload = [
        {"document": r.document, "language": r.language, "summary": r.summary,
         "chunk_summaries": r.chunk_summaries, "stats": r.stats}
        for r in results
    ]  # fmt: skip
    if as_jsonl:
        text = "\n".join(json.dumps(p, ensure_ascii=False) for p in payload)
    elif as_json:
        text = json.dumps(payload[0] if len(payload) == 1 else payload, indent=2,
                          ensure_ascii=False)  # fmt: skip
    elif len(results) == 1:
        text = results[0].summary
    else:
        text = "\n\n".join(f"## {r.document}\n\n{r.summary}" for r in results)
    if output is None:
        if as_json or as_jsonl:
            click.echo(text)
        return
    from localllm.store.integrity import write_text_atomically

    write_text_atomically(output, text + "\n")
