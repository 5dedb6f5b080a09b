"""`localllm doctor`: what this machine and this build can do."""

from __future__ import annotations

import json

import click

from localllm.cli.common import ctx_option, gpu_layers_option


@click.command()
@click.argument("model", required=False)
@ctx_option
@gpu_layers_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def doctor(model, ctx, gpu_layers, as_json):
    """Show llama.cpp backends, CPU, RAM, GPUs, folders and free disk.

    With MODEL (a downloaded model or a .gguf path), also explain how many of
    its layers would go to the GPU at the context it would load with, and why.
    When a GPU is present that this build cannot use, print the command that
    reinstalls llama.cpp for it.

    \b
    Examples:
      localllm doctor
      localllm doctor --json
      localllm doctor smollm2-135m --ctx 4096
      localllm doctor ./model.Q4_K_M.gguf --gpu-layers 20
    """
    from localllm.config import Settings
    from localllm.doctor import collect, explain_model

    settings = Settings.from_env()
    report = collect(settings)
    if model:
        report["offload"] = explain_model(settings, model, ctx, gpu_layers)
    elif ctx or gpu_layers is not None:
        raise click.UsageError("--ctx and --gpu-layers explain a model's plan: name a MODEL")
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_report(report)
    if report.get("offload"):
        _print_offload(report["offload"])
    if report["gpu_reinstall"]:
        advice = report["gpu_reinstall"]
        click.echo(f"\nThis build cannot use your GPU. To use it with {advice['backend']}, run:")
        click.echo(f"  {advice['command']}")
        click.echo(f"({advice['note']})")


_INSTALL_KINDS = {
    "pipx": "pipx (its own environment)",
    "pip": "pip (a Python environment)",
    "binary": "single-file executable",
}


def _destinations(engines) -> str:
    if isinstance(engines, str):
        return engines
    where = "this machine only"
    if engines:
        named = ", ".join(f"{n} ({url})" for n, url in engines.items())
        where += f"; a command that names an engine sends it there: {named}"
    return where


def _print_report(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from localllm.cli.formatting import human_bytes

    backends = ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in r["backends"].items())
    cpu = r["cpu"]
    gpus = "; ".join(
        f"{g['name']} ({human_bytes(g['vram_free'])} free of {human_bytes(g['vram_total'])})"
        for g in r["gpus"]
    )
    rows = [
        ("localllm", f"{r['localllm']} (Python {r['python']}, {r['platform']})"),
        ("installed as", _INSTALL_KINDS.get(r["install"], r["install"])),
        ("llama-cpp-python", r["llama_cpp_python"]),
        ("backends", backends),
        ("GPU offload", "yes" if r["gpu_offload"] else "no (CPU-only build)"),
        *((("kernels", r["kernels_off"]),) if r.get("kernels_off") else ()),
        ("CPU", f"{cpu['model']} ({cpu['arch']})"),
        ("cores", f"{cpu['physical_cores']} physical, {cpu['logical_cores']} logical usable"),
        ("CPU features", " ".join(cpu["features"]) or "-"),
        ("RAM", f"{human_bytes(r['ram']['available'])} free of {human_bytes(r['ram']['total'])}"),
        ("GPUs", gpus or "none found (nvidia-smi)"),
        *((f"{k} folder", v) for k, v in r["folders"].items() if v),
        ("disk free", human_bytes(r["disk_free"])),
        ("models", str(r["models_registered"])),
        ("offline", "yes (LOCALLLM_OFFLINE=1)" if r["offline"] else "no"),
        ("text goes to", _destinations(r["remote_engines"])),
    ]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def _print_offload(o: dict) -> None:
    from localllm.cli.formatting import human_bytes

    layers = "all" if o["n_gpu_layers"] == -1 else str(o["n_gpu_layers"])
    lines = [
        f"{o['blocks']} blocks of up to {human_bytes(o['block_bytes'])}, then the output head "
        f"({human_bytes(o['output_bytes'])}); token embeddings "
        f"({human_bytes(o['input_bytes'])}) stay on the CPU",
        f"KV cache {human_bytes(o['kv_bytes_per_layer'])} per layer at {o['n_ctx']} context; "
        f"compute buffers {human_bytes(o['compute_bytes'])}",
    ]
    if o["vram_free"] is not None:
        lines.append(
            f"{human_bytes(o['vram_free'])} VRAM free, {human_bytes(o['reserve'])} kept in "
            f"reserve, {human_bytes(o['gpu_bytes'])} planned onto the GPU"
        )
    lines += [*o["context_notes"], f"n_gpu_layers = {layers}: {o['reason']}"]
    click.echo(
        f"\nGPU plan for {o['model']} ({o['offloaded']} of {o['n_layers']} layers on the GPU)"
    )
    for line in lines:
        click.echo(f"  {line}")
    click.echo("  (--gpu-layers N on run, chat, summarize and bench overrides it)")
