"""`localllm doctor`: what this machine and this build can do."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def doctor(as_json):
    """Show llama.cpp backends, CPU, RAM, GPUs, folders and free disk.

    \b
    Examples:
      localllm doctor
      localllm doctor --json
    """
    from localllm.config import Settings
    from localllm.doctor import collect

    report = collect(Settings.from_env())
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_report(report)


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
        ("llama-cpp-python", r["llama_cpp_python"]),
        ("backends", backends),
        ("GPU offload", "yes" if r["gpu_offload"] else "no (CPU-only build)"),
        ("CPU", f"{cpu['model']} ({cpu['arch']})"),
        ("cores", f"{cpu['physical_cores']} physical, {cpu['logical_cores']} logical usable"),
        ("CPU features", " ".join(cpu["features"]) or "-"),
        ("RAM", f"{human_bytes(r['ram']['available'])} free of {human_bytes(r['ram']['total'])}"),
        ("GPUs", gpus or "none found (nvidia-smi)"),
        *((f"{k} folder", v) for k, v in r["folders"].items() if v),
        ("disk free", human_bytes(r["disk_free"])),
        ("models", str(r["models_registered"])),
        ("offline", "yes (LOCALLLM_OFFLINE=1)" if r["offline"] else "no"),
    ]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)
