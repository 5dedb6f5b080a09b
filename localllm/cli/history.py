"""`localllm history`: list, show, export, import, rename and remove stored conversations."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click


def _history():
    from localllm.chat.history import History
    from localllm.cli.conversation import history_path
    from localllm.config import Settings

    return History(history_path(Settings.from_env()))


@click.group()
def history():
    """Stored conversations (every `run` and chat is kept here).

    \b
    Examples:
      localllm history list
      localllm history show 3
      localllm history export 3 --format md -o chat.md
      localllm history import chat.json
      localllm history rm 3 -y
    """


@history.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--limit", type=click.IntRange(min=1), default=30, show_default=True)
def list_conversations(as_json, limit):
    """List conversations, newest first."""
    rows = _history().list(limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo('no conversations yet: localllm run "Hello"')
        return
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["updated_at"]))
        click.echo(f"{r['id']:>5}  {when}  {r['messages']:>3} msgs  {r['model']:<22} {r['title']}")


@history.command()
@click.argument("conversation_id", type=int)
def show(conversation_id):
    """Print a conversation as Markdown."""
    click.echo(_history().export_markdown(conversation_id))


@history.command()
@click.argument("conversation_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="Write here.")
def export(conversation_id, fmt, output):
    """Export a conversation to Markdown or JSON (JSON re-imports)."""
    store = _history()
    if fmt == "json":
        text = json.dumps(store.export_json(conversation_id), indent=2, ensure_ascii=False)
    else:
        text = store.export_markdown(conversation_id)
    if output is None:
        click.echo(text)
        return
    from localllm.store.integrity import write_text_atomically

    write_text_atomically(output, text + "\n")
    click.echo(f"wrote {output}")


@history.command(name="import")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def import_conversation(path):
    """Import a conversation exported with --format json."""
    from localllm.errors import LocalLLMError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LocalLLMError(f"{path} is not JSON ({exc}): export with --format json") from None
    conv = _history().import_json(data)
    click.echo(f"imported conversation {conv.id}: {conv.title}")


@history.command()
@click.argument("conversation_id", type=int)
@click.argument("title")
def rename(conversation_id, title):
    """Give a conversation a new title."""
    _history().rename(conversation_id, title)
    click.echo(f"renamed conversation {conversation_id}")


@history.command()
@click.argument("conversation_id", type=int)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def rm(conversation_id, yes):
    """Delete a conversation."""
    import sys

    store = _history()
    conv = store.get(conversation_id)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("deleting needs confirmation: pass -y to delete without asking")
        click.confirm(f"delete conversation {conv.id} ({conv.title!r})?", abort=True)
    store.delete(conversation_id)
    click.echo(f"deleted conversation {conversation_id}")
