"""`localllm detect`: is this text marked with this installation's watermark?"""

from __future__ import annotations

import json

import click

from localllm.cli.common import model_option, quiet_option


@click.command()
@click.argument("file", required=True)
@model_option
@click.option("--threshold", type=float, default=4.0, show_default=True,
              help="z-score from which the text counts as watermarked.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the score as JSON.")
@quiet_option
def detect(file, model, threshold, as_json, quiet):
    """Score a text for the green-list watermark that --watermark adds.

    The text is tokenized with the model that wrote it (by default the last one
    that wrote watermarked text here); each token after the first few is green
    or not under the key, repeated n-grams count once, and z compares the green
    count with chance. FILE may be - for stdin; pasted text is normalised
    (Unicode, invisible characters, line ends) first.

    \b
    Examples:
      localllm run --watermark "Write a short poem." > poem.txt
      localllm detect poem.txt
      pbpaste | localllm detect - --json
      localllm detect essay.md -m qwen3.5-2b --threshold 5
    """
    from localllm.cli.progress import TerminalProgress
    from localllm.config import Settings
    from localllm.documents.readers import open_document, text_blocks
    from localllm.errors import ModelNotFound
    from localllm.watermarking import (
        detect as score_text,
    )
    from localllm.watermarking import (
        recorded_vocabularies,
        vocabulary_fingerprint,
        watermark_spec,
    )

    settings = Settings.from_env()
    progress = TerminalProgress(quiet=quiet)
    doc = open_document(file, settings.cache_dir / "spool")
    try:
        text = "".join(text_blocks(doc))
    finally:
        doc.discard()
    records = recorded_vocabularies(settings)
    if model is None and records:
        model = list(records)[-1]
        progress.message(f"scoring as {model} would have written it (the last model that "
                         "wrote watermarked text here; -m to choose)")  # fmt: skip
    from localllm.engine import LoadOptions
    from localllm.engine.llama import load_engine
    from localllm.store.resolve import resolve_model

    resolved = resolve_model(settings, model, progress=progress)
    engine = load_engine(resolved.path, LoadOptions(n_ctx=512, verbose=settings.debug))
    try:
        fingerprint = vocabulary_fingerprint(engine)
        if records and fingerprint not in records.values():
            raise ModelNotFound(f"{resolved.name}'s vocabulary is not one this watermark was "
                                f"used with: use -m with one of {', '.join(records)}")  # fmt: skip
        result = score_text(watermark_spec(settings), engine, resolved.name, text, threshold)
    finally:
        engine.close()
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    verdict = "watermarked" if result.watermarked else "no watermark found"
    click.echo(f"{verdict}: z = {result.z:.2f} (threshold {threshold:g}), p = "
               f"{result.p_value:.2g}; {result.green} of {result.tokens_scored} scored tokens "
               f"green (chance: {result.gamma:.0%}); tokenized as {resolved.name}")  # fmt: skip
    if result.tokens_scored < 50:
        progress.message(f"only {result.tokens_scored} tokens could be scored: short texts "
                         "rarely reach the threshold even when marked")  # fmt: skip
