"""`localllm index`: the document index `ask` answers from (add, list, rm, update)."""

from __future__ import annotations

import json
import time

import click

from localllm.cli.common import quiet_option

index_name_option = click.option(
    "--index", "index_name", default="default", show_default=True, metavar="NAME",
    help="Which index (each is one SQLite file under the data folder).",
)  # fmt: skip


@click.group()
def index():
    """Index your files so `localllm ask` can answer from them.

    Passages are searched with SQLite's full-text index (BM25, accents folded:
    "informacion" finds "información"); with --embed MODEL they get vectors too,
    and `ask` ranks by both.

    \b
    Examples:
      localllm index add ~/notas ~/informes/2025.pdf
      localllm index add docs/ --index trabajo --embed bge-m3
      localllm index list
      localllm index update
      localllm index rm ~/notas/borrador.md
    """


@index.command()
@click.argument("paths", nargs=-1, required=True)
@index_name_option
@click.option(
    "--embed",
    "embed_model",
    default=None,
    metavar="MODEL",
    help="An embedding model for vectors (default: [index] embedding_model).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@quiet_option
def add(paths, index_name, embed_model, as_json, quiet):  # fmt: skip
    """Index files and folders (text, Markdown, HTML, PDF); changed files are re-read."""
    from localllm.config import load_user_config

    with _indexer(index_name, quiet, embed_model, create=True) as (indexer, settings):
        if embed_model is None and indexer.embed is None and not indexer.index.passage_count():
            configured = load_user_config(settings).get("index", {}).get("embedding_model")
            if configured:
                indexer.embed = _embedder(indexer.index, settings, indexer.progress, configured)
        _report(indexer.add(list(paths)), index_name, as_json)


@index.command()
@index_name_option
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@quiet_option
def update(index_name, as_json, quiet):
    """Re-read indexed files whose content changed; drop those that are gone."""
    with _indexer(index_name, quiet) as (indexer, _):
        _report(indexer.update(), index_name, as_json)


@index.command(name="rm")
@click.argument("paths", nargs=-1, required=True)
@index_name_option
@quiet_option
def remove(paths, index_name, quiet):
    """Drop files, or everything under folders, from the index (the files stay)."""
    with _indexer(index_name, quiet, load_embedder=False) as (indexer, _):
        report = indexer.remove(list(paths))
    for path in report.removed:
        click.echo(f"removed {path}")
    for path, why in report.failed:
        click.echo(f"{path}: {why}", err=True)
    if report.failed and not report.removed:
        raise SystemExit(1)


@index.command(name="list")
@index_name_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the files.")
def list_files(index_name, as_json):
    """List the files an index holds, or say which indexes there are."""
    from localllm.config import Settings
    from localllm.index.indexing import index_names, open_index

    settings = Settings.from_env()
    store = open_index(settings, index_name)
    try:
        files = store.files()
        model = store.meta("embedding_model")
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([f.__dict__ for f in files], indent=2, ensure_ascii=False))
        return
    others = [n for n in index_names(settings) if n != index_name]
    click.echo(f"index {index_name}: {len(files)} files, {sum(f.passages for f in files)} "
               f"passages, " + (f"vectors from {model}" if model else "no vectors"))  # fmt: skip
    for f in files:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(f.indexed_at))
        pages = f" {f.pages:>4} pages" if f.pages else " " * 10
        click.echo(f"{when} {f.passages:>6} passages{pages}  {f.path}")
    if others:
        click.echo(f"other indexes: {', '.join(others)}")


class _indexer:
    """The index opened, an Indexer on it (with its embedding model loaded when it has
    one), closed on the way out; an interrupted run says what it finished."""

    def __init__(self, name, quiet, embed_model=None, *, create=False, load_embedder=True):
        self.args = (name, quiet, embed_model, create, load_embedder)

    def __enter__(self):
        from localllm.cli.progress import TerminalProgress
        from localllm.config import Settings
        from localllm.index.embedding import chosen_model
        from localllm.index.indexing import Indexer, open_index

        name, quiet, embed_model, create, load_embedder = self.args
        settings = Settings.from_env()
        progress = TerminalProgress(quiet=quiet)
        self.store = open_index(settings, name, create=create)
        try:
            model = chosen_model(self.store, embed_model)
            embed = None
            if model and load_embedder:
                embed = _embedder(self.store, settings, progress, model)
        except BaseException:
            self.store.close()
            raise
        self.before = len(self.store.files())
        return Indexer(self.store, progress, settings.cache_dir / "spool", embed), settings

    def __exit__(self, kind, exc, tb):
        if kind is KeyboardInterrupt:
            click.echo(f"interrupted: the index holds {len(self.store.files())} files "
                       f"({self.before} before); each file is in whole or not at all",
                       err=True)  # fmt: skip
        self.store.close()
        return False


def _embedder(store, settings, progress, model):
    from localllm.cli.common import command_host
    from localllm.engine.embed import EMBED_CTX
    from localllm.index.embedding import embedder

    return embedder(store, command_host(settings, progress), model, EMBED_CTX)


def _report(report, index_name, as_json) -> None:
    if as_json:
        click.echo(json.dumps({"index": index_name, **report.as_dict()}, indent=2,
                              ensure_ascii=False))  # fmt: skip
    else:
        rate = report.pages / report.seconds if report.seconds else 0.0
        click.echo(f"index {index_name}: {len(report.added)} added, {len(report.updated)} "
                   f"re-read, {len(report.unchanged)} unchanged, {len(report.removed)} removed; "
                   f"{report.passages} passages from {report.pages} pages "
                   f"({rate:.0f} pages/s)")  # fmt: skip
        for path, why in report.failed:
            click.echo(f"skipped {path}: {why}", err=True)
    if report.failed and not (report.added or report.updated or report.unchanged):
        raise SystemExit(1)
