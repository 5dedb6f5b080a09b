"""The `localllm` command line: parse, call the core, print, map errors to exit codes.

Subcommands are imported only when invoked, so `localllm --help` stays instant
(no llama_cpp, numpy or rich at start-up). Every error a user can cause is a
LocalLLMError and becomes one line on stderr with exit code 1; anything else
is a bug and shows a traceback only with LOCALLLM_DEBUG=1.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from localllm import __version__

# name -> (module, function, one-line help shown by `localllm --help`)
COMMANDS = {
    "run": ("localllm.cli.run", "run", "Stream one answer from a model to stdout."),
    "chat": ("localllm.cli.chat", "chat", "Chat in the terminal (Textual app)."),
    "summarize": ("localllm.cli.summarize", "summarize", "Summarize documents of any length."),
    "translate": ("localllm.cli.translate", "translate", "Translate documents, structure kept."),
    "extract": (
        "localllm.cli.extract",
        "extract",
        "Extract entities or fields, grounded, as JSON.",
    ),
    "index": ("localllm.cli.index", "index", "Index files for `ask` (add, list, rm, update)."),
    "ask": ("localllm.cli.ask", "ask", "Answer from your documents, with citations."),
    "detect": ("localllm.cli.detect", "detect", "Score a text for this machine's watermark."),
    "serve": ("localllm.cli.serve", "serve", "Serve the OpenAI and Ollama APIs (many at once)."),
    "ps": ("localllm.cli.serve", "ps", "Show the models a running server has loaded."),
    "engines": ("localllm.cli.engines", "engines", "List and test remote engines (vLLM, ...)."),
    "pull": ("localllm.cli.models", "pull", "Download, verify and register a model."),
    "list": ("localllm.cli.models", "list_models", "List downloaded and imported models."),
    "show": ("localllm.cli.models", "show", "Show a model's details and memory needs."),
    "rm": ("localllm.cli.models", "rm", "Remove a stored model."),
    "import": ("localllm.cli.models", "import_model", "Register a local .gguf file."),
    "search": ("localllm.cli.models", "search", "Search the catalogue and the hub."),
    "quantize": (
        "localllm.cli.quantize",
        "quantize",
        "Convert a checkpoint to GGUF, or requantize one.",
    ),
    "eval": ("localllm.cli.quantize", "evaluate_model", "Perplexity and KL divergence of a model."),
    "history": ("localllm.cli.history", "history", "List, show, export and import conversations."),
    "bench": ("localllm.cli.bench", "bench", "Measure prefill and decode speed."),
    "doctor": ("localllm.cli.doctor", "doctor", "Show backends, CPU, RAM, GPUs, folders."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="localllm")
def cli() -> None:
    """Run open LLMs on your own machine, offline once a model is on disk.

    \b
    Examples:
      localllm run "Why is the sky blue?"
      localllm doctor
    """


def _debug() -> bool:
    return os.environ.get("LOCALLLM_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def main(argv: list[str] | None = None) -> None:
    from localllm.errors import LocalLLMError

    try:
        code = cli.main(args=argv, prog_name="localllm", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("\ninterrupted", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except LocalLLMError as exc:
        if _debug():
            raise
        click.echo(f"error: {exc}", err=True)
        code = 1
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        code = 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); silence Python's shutdown complaint.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 1
    except Exception as exc:
        if _debug():
            raise
        click.echo(
            f"internal error: {exc.__class__.__name__}: {exc} "
            "(run again with LOCALLLM_DEBUG=1 for the traceback and report it)",
            err=True,
        )
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
