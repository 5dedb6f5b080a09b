"""Model manager commands: pull, list, show, rm, import, search."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from localllm.cli.common import quiet_option
from localllm.cli.formatting import human_bytes


def _settings():
    from localllm.config import Settings

    return Settings.from_env()


def _ago(ts: float | None) -> str:
    if not ts:
        return "never"
    minutes = (time.time() - ts) / 60
    for limit, unit, div in ((60, "min", 1), (48 * 60, "h", 60), (float("inf"), "d", 1440)):
        if minutes < limit:
            return f"{minutes / div:.0f} {unit} ago"
    return "-"


@click.command()
@click.argument("model")
@click.option("--fit", "pick_fit", is_flag=True, help="Pick the largest quant that fits in memory.")
@click.option(
    "--ctx", type=click.IntRange(min=64), default=None, help="Context to plan memory for."
)
@click.option("--force", is_flag=True, help="Download even when it will not fit in memory.")
@quiet_option
def pull(model, pick_fit, ctx, force, quiet):
    """Download a model, verify it and register it.

    MODEL is a catalogue name with an optional quant (qwen2.5-1.5b, qwen2.5-1.5b:q8_0)
    or any GGUF repo on the Hugging Face hub: hf:ORG/REPO[:QUANT|:FILE.gguf].
    Interrupted downloads resume where they stopped.

    \b
    Examples:
      localllm pull qwen2.5-1.5b
      localllm pull llama3.2-3b --fit --ctx 16384
      localllm pull hf:bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M
    """
    from localllm.catalog import load_catalog, split_model_ref
    from localllm.cli.progress import TerminalProgress
    from localllm.store.pull import largest_fitting_quant, pull_target
    from localllm.store.pull import pull as do_pull
    from localllm.store.resolve import find_local, verify_entry

    settings = _settings()
    progress = TerminalProgress(quiet=quiet)
    if pick_fit:
        name, _ = split_model_ref(model)
        if name not in load_catalog():
            raise click.UsageError("--fit works with catalogue models (see `localllm search`)")
        from localllm.store.hub import ensure_online

        ensure_online(settings, f"choosing a quant of {name}")
        target = largest_fitting_quant(settings, load_catalog()[name], ctx, progress)
    else:
        target = None
    from localllm.errors import OfflineError
    from localllm.store.registry import Registry

    try:
        target = target or pull_target(settings, model)
        existing = Registry(settings).get(target.key)
    except OfflineError:  # listing a hub repo needs the network; a stored copy may still do
        existing = find_local(settings, model)
        if existing is None:
            raise
    if existing is not None and verify_entry(existing, Registry(settings), progress):
        click.echo(f"{existing.name} is already downloaded ({existing.path})")
        return
    entry = do_pull(
        settings, target, progress, n_ctx=ctx, force=force, show_pip_progress=progress.bars
    )
    click.echo(f"pulled {entry.name}: {human_bytes(entry.size)}, sha256 verified ({entry.path})")


@click.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_models(as_json):
    """List downloaded and imported models.

    \b
    Examples:
      localllm list
      localllm list --json
    """
    from localllm.catalog import load_catalog
    from localllm.store.inspect import replacement_note
    from localllm.store.registry import Registry

    entries = sorted(Registry(_settings()).all().values(), key=lambda e: e.name)
    if as_json:
        click.echo(json.dumps([_entry_row(e) for e in entries], indent=2))
        return
    if not entries:
        click.echo("no models yet: `localllm pull smollm2-135m`, or see `localllm search`")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "QUANT", "SIZE", "CONTEXT", "ARCH", "SOURCE", "LAST USED"):
        table.add_column(column, no_wrap=column != "SOURCE")
    for e in entries:
        table.add_row(
            e.name, e.quant or "-", human_bytes(e.size), str(e.context_length or "-"),
            e.architecture or "-", _source_label(e), _ago(e.last_used),
        )  # fmt: skip
    Console().print(table)
    catalog = load_catalog()
    for e in entries:  # a newer model does the job better: say so
        if note := replacement_note(catalog.get(e.catalog_name or "")):
            click.echo(note)


def _source_label(e) -> str:
    if e.source.startswith("package:"):
        return "package index"
    if e.repo:
        return f"hf:{e.repo}"
    return "imported" if e.source.startswith("file:") else e.source


def _entry_row(e) -> dict:
    return {
        "name": e.name,
        "quant": e.quant,
        "size": e.size,
        "context_length": e.context_length,
        "architecture": e.architecture,
        "source": e.source,
        "path": e.path,
        "sha256": e.sha256,
        "added_at": e.added_at,
        "last_used": e.last_used,
    }


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def show(model, as_json):
    """Show a model's details and how much memory it needs.

    Works on stored models, .gguf paths and catalogue names (without downloading).

    \b
    Examples:
      localllm show smollm2-135m
      localllm show ./model.gguf --json
    """
    from localllm.store.inspect import describe

    report = describe(_settings(), model)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_show(report)


def _quality_line(q: dict) -> str:
    line = f"perplexity {q.get('perplexity', 0):.3f} on {q.get('text', 'the held-out text')}"
    if q.get("reference_perplexity"):
        change = (q["perplexity"] / q["reference_perplexity"] - 1) * 100
        line += (
            f" ({change:+.2f} % vs 16-bit), KL {q.get('kl_divergence_mean', 0):.4f}, "
            f"same top token {q.get('top1_agreement', 0) * 100:.1f} %"
        )
    return line


def _print_show(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in r.items():
        if key == "memory":
            for est in value:
                verdict = "fits" if est["fits"] else "does not fit"
                table.add_row(
                    f"memory @ {est['n_ctx']}",
                    f"{human_bytes(est['total'])} (weights {human_bytes(est['weights'])}, "
                    f"KV {human_bytes(est['kv_cache'])}): {verdict} in {est['device']}",
                )
        elif key == "quality":
            table.add_row("quality", _quality_line(value))
        elif key == "embedding":
            table.add_row("embedding", f"{value['dimensions']} dimensions, {value['pooling']} "
                          f"pooling, inputs up to {value['max_input']} tokens")  # fmt: skip
        elif key == "tensor_types":
            table.add_row("tensor types", ", ".join(f"{k} x{v}" for k, v in value.items()))
        elif key in ("size", "weights_bytes"):
            table.add_row(key.replace("_", " "), human_bytes(value))
        elif isinstance(value, bool):
            table.add_row(key.replace("_", " "), "yes" if value else "no")
        elif value is not None:
            table.add_row(key.replace("_", " "), str(value))
    Console().print(table)


@click.command()
@click.argument("model")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def rm(model, yes):
    """Remove a stored model.

    Deletes only files localllm downloaded; a model imported with --link is
    unregistered and its file left alone.

    \b
    Examples:
      localllm rm qwen2.5-1.5b:q4_k_m
      localllm rm my-model -y
    """
    from localllm.store.manage import remove_model
    from localllm.store.resolve import find_local

    settings = _settings()
    entry = find_local(settings, model)
    if entry is None:
        from localllm.errors import ModelNotFound

        raise ModelNotFound(f"no stored model named {model!r}: see `localllm list`")
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("removing needs confirmation: pass -y to remove without asking")
        click.confirm(f"remove {entry.name} ({human_bytes(entry.size)})?", abort=True)
    entry, outcome = remove_model(settings, entry.name)
    click.echo(f"removed {entry.name}: {outcome}")


@click.command(name="import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", default=None, help="Name to register it under (default: the file name).")
@click.option("--link", is_flag=True, help="Register the file where it is instead of copying it.")
@quiet_option
def import_model(path, name, link, quiet):
    """Register a local .gguf file (validated first).

    \b
    Examples:
      localllm import ~/Downloads/Mistral-7B-Instruct-v0.3-Q4_K_M.gguf --name mistral
      localllm import ./model.gguf --link
    """
    from localllm.cli.progress import TerminalProgress
    from localllm.store.manage import import_model as do_import

    entry = do_import(_settings(), path, TerminalProgress(quiet=quiet), name=name, link=link)
    how = "linked" if link else "copied"
    click.echo(f"imported {entry.name} ({entry.architecture}, {human_bytes(entry.size)}, {how})")


@click.command()
@click.argument("term")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--limit", type=click.IntRange(min=1, max=100), default=15, show_default=True)
def search(term, as_json, limit):
    """Search the catalogue, and the Hugging Face hub's GGUF repos when online.

    \b
    Examples:
      localllm search qwen
      localllm search "llama 3.2" --json
    """
    from localllm.store.inspect import search_models

    result = search_models(_settings(), term, limit=limit)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    if result["catalog"]:
        click.echo("catalogue:")
        for m in result["catalog"]:
            flags = "" if m["commercial_use"] else "  [non-commercial]"
            if m["kind"] == "embedding":
                flags += "  [embeddings]"
            if m["superseded_by"]:
                flags += f"  [superseded by {m['superseded_by']}]"
            click.echo(f"  {m['name']:<22} {m['parameters']:>5}  {m['description']}{flags}")
    if result["hub"]:
        click.echo("Hugging Face hub (pull with hf:REPO):")
        for repo in result["hub"]:
            click.echo(f"  hf:{repo['id']}  ({repo.get('downloads') or 0} downloads)")
    if result.get("hub_note"):
        click.echo(result["hub_note"], err=True)
    if not result["catalog"] and not result["hub"]:
        click.echo(f"nothing matches {term!r}")
