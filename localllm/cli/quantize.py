"""`localllm quantize` and `localllm eval`: make a GGUF, and measure what it cost."""

from __future__ import annotations

import json
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import click

from localllm.cli.common import gpu_layers_option, quiet_option
from localllm.cli.formatting import human_bytes
from quantize.formats import OUTPUT_TYPES

TYPE_CHOICE = click.Choice(list(OUTPUT_TYPES), case_sensitive=False)
QUANT_SUFFIX = re.compile(r"[-_.](f16|bf16|f32|q\d(_k)?(_[a-z0-9]+)?|iq\d\w*)$", re.I)


@contextmanager
def _user_errors():
    """quantize/ raises its own errors (it never imports localllm): make them one-liners."""
    from localllm.errors import LocalLLMError
    from quantize.errors import QuantizeError

    try:
        yield
    except QuantizeError as exc:
        raise LocalLLMError(str(exc)) from None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "model"


def _resolve_source(settings, src: str, progress) -> tuple[Path, str | None, str]:
    """(path, hub repo or None, base name for the output) for a folder, GGUF, repo id or model."""
    from quantize.convert import looks_like_hub_id

    path = Path(src).expanduser()
    if path.exists():
        return path, None, _slug(QUANT_SUFFIX.sub("", path.stem if path.is_file() else path.name))
    if looks_like_hub_id(src):
        from localllm.store.checkpoints import fetch_checkpoint

        repo = src.removeprefix("hf:")
        return fetch_checkpoint(settings, repo, progress), repo, _slug(repo.split("/")[-1])
    from localllm.store.resolve import resolve_model

    model = resolve_model(settings, src, progress)
    return model.path, None, _slug(QUANT_SUFFIX.sub("", src.split(":")[0]))


def _targets(settings, base: str, out_type: str, out: str | None, name: str | None, force: bool):
    """Where the output goes and the name to register it under (None: not registered)."""
    from localllm.errors import LocalLLMError
    from localllm.store.paths import folder_for_name
    from localllm.store.registry import Registry

    register = name if out else (name or f"{base}-{out_type}")
    if register and Registry(settings).get(register) is not None and not force:
        raise LocalLLMError(
            f"a model named {register!r} is already registered: choose another --name, "
            f"pass --force, or `localllm rm {register}` first"
        )
    if out:
        path = Path(out).expanduser()
    else:  # the name is the user's: it must not lead out of the models folder
        folder = folder_for_name(register)
        path = settings.models_dir / "quantized" / folder / f"{folder}.gguf"
    if path.exists() and not force:
        raise LocalLLMError(f"{path} exists: choose another -o or pass --force to replace it")
    return path, register


def _register(settings, path: Path, name: str, progress, *, owned: bool) -> None:
    from localllm.store.manage import import_model, remove_model
    from localllm.store.registry import Registry

    registry = Registry(settings)
    previous = registry.get(name)
    if previous is not None:
        if Path(previous.path).resolve() != path.resolve():
            remove_model(settings, name)
        else:
            registry.remove(name)
    import_model(settings, path, progress, name=name, link=True, owned=owned)


def _run_report(path: Path, reference: Path, progress) -> dict:
    from localllm.quality import HELDOUT_NAME, evaluate, heldout_text
    from quantize.gguf_edit import add_metadata

    report = evaluate(path, heldout_text(), reference, progress=progress)
    keys = report.metadata() | {"localllm.quality.text": HELDOUT_NAME}
    progress.message(f"storing the quality figures in {path.name}")
    add_metadata(path, keys)
    return report.to_dict()


@click.command()
@click.argument("src")
@click.option("-t", "--type", "out_type", type=TYPE_CHOICE,
              required=True, help="Output type: K-quants via llama.cpp, the others written "
              "directly.")  # fmt: skip
@click.option("-o", "--output", "out", default=None, metavar="OUT.gguf",
              help="Write here (registered only when --name is also given).")  # fmt: skip
@click.option("--name", default=None, help="Register the output under this name.")
@click.option("--report", is_flag=True,
              help="Measure perplexity and KL divergence against the 16-bit model on a "
              "held-out text, and store the figures in the output's metadata.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing output or registered name.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@quiet_option
def quantize(src, out_type, out, name, report, force, as_json, quiet):
    """Convert a Hugging Face checkpoint (folder or hub repo id) or requantize a GGUF model.

    \b
    Examples:
      localllm quantize ./SmolLM2-135M-Instruct --type q4_k_m
      localllm quantize HuggingFaceTB/SmolLM2-360M-Instruct --type q8_0 --report
      localllm quantize smollm2-135m --type q4_0 -o smol-q4_0.gguf
    """
    from localllm.cli.progress import TerminalProgress
    from localllm.config import Settings
    from quantize.files import scratch_file
    from quantize.formats import output_type
    from quantize.metadata import ModelCard
    from quantize.pipeline import quantize as run_quantize

    settings = Settings.from_env()
    progress = TerminalProgress(quiet=quiet or as_json)
    out_type = out_type.lower()
    with _user_errors(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source, repo, base = _resolve_source(settings, src, progress)
        path, register = _targets(settings, base, out_type, out, name, force)
        card = None
        if source.is_dir():
            from quantize.checkpoint import open_checkpoint

            card = ModelCard.from_checkpoint(open_checkpoint(source), repo)
        with scratch_file(path, ".reference") as ref_path:
            result = run_quantize(
                source, path, output_type(out_type), card=card, progress=progress,
                reference=ref_path if report and source.is_dir() else None,
                verbose=settings.debug,
            )  # fmt: skip
            for warning in caught:
                if warning.category is UserWarning:  # ours; not libraries' deprecations
                    progress.message(f"warning: {warning.message}")
            figures = _run_report(path, result.reference, progress) if report else None
        if register:
            _register(settings, path, register, progress, owned=out is None)
    _print_result(result, register, figures, as_json)


def _print_result(result, register: str | None, figures: dict | None, as_json: bool) -> None:
    rate = result.input_bytes / max(result.seconds, 1e-9) / 1e6
    if as_json:
        document = {
            "path": str(result.path), "type": result.out_type, "name": register,
            "input_bytes": result.input_bytes, "output_bytes": result.output_bytes,
            "seconds": round(result.seconds, 3), "input_mb_per_s": round(rate, 1),
            "report": figures,
        }  # fmt: skip
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(
        f"wrote {result.path} ({result.out_type}, {human_bytes(result.output_bytes)}) in "
        f"{result.seconds:.1f} s, {rate:.0f} MB/s of input"
    )
    if register:
        click.echo(f'registered as {register}: localllm run -m {register} "..."')
    if figures:
        _print_report(figures)


def _print_report(figures: dict) -> None:
    lines = [f"perplexity        {figures['perplexity']:.3f}  ({figures['tokens_scored']} tokens)"]
    if figures.get("reference_perplexity"):
        ref = figures["reference_perplexity"]
        change = (figures["perplexity"] / ref - 1) * 100
        lines += [
            f"16-bit perplexity {ref:.3f}  ({change:+.2f} %)",
            f"KL divergence     {figures['kl_mean']:.4f} mean, {figures['kl_p99']:.4f} p99",
            f"same top token    {figures['top1_agreement'] * 100:.1f} %",
        ]
    click.echo("\n".join(lines))


@click.command(name="eval")
@click.argument("model")
@click.option("--text", "text_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Plain-text file to measure on (default: the held-out text shipped with "
              "localllm).")  # fmt: skip
@click.option("--ref", "ref_model", default=None, metavar="MODEL",
              help="Reference model (e.g. the f16 original): adds KL divergence and top-1 "
              "agreement.")  # fmt: skip
@click.option("--ctx", type=click.IntRange(min=64), default=512, show_default=True,
              help="Window size; the second half of each window is scored.")  # fmt: skip
@gpu_layers_option
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@quiet_option
def evaluate_model(model, text_file, ref_model, ctx, gpu_layers, as_json, quiet):
    """Perplexity of a model on a text, and its divergence from a reference model.

    \b
    Examples:
      localllm eval smollm2-135m-instruct-q4_k_m --ref smollm2-135m-instruct-f16
      localllm eval model.gguf --text notes.txt --json
    """
    from localllm.cli.progress import TerminalProgress
    from localllm.config import Settings
    from localllm.errors import LocalLLMError
    from localllm.quality import evaluate, heldout_text
    from localllm.store.resolve import resolve_model

    settings = Settings.from_env()
    progress = TerminalProgress(quiet=quiet or as_json)
    path = resolve_model(settings, model, progress).path
    ref = resolve_model(settings, ref_model, progress).path if ref_model else None
    if text_file:
        try:
            text = Path(text_file).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise LocalLLMError(f"{text_file} is not UTF-8 text: convert it first") from None
    else:
        text = heldout_text()
    report = evaluate(path, text, ref, n_ctx=ctx, gpu_layers=gpu_layers, progress=progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report.to_dict())
