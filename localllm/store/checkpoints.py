"""Fetch a Hugging Face checkpoint (safetensors + config + tokenizer files) for the quantizer.

Only what conversion reads is downloaded: no PyTorch .bin weights, no ONNX or
GGUF copies, no images. Files land in the Hugging Face cache layout through
the same resumable, verified downloader as models, so a second run (or another
Hugging Face tool) reuses them.
"""

from __future__ import annotations

import re
from pathlib import Path

from localllm.config import Settings
from localllm.errors import ModelNotFound
from localllm.progress import ProgressReporter
from localllm.store.hub import download, list_files, remote_file

WANTED = re.compile(
    r"^(?:[^/]+\.safetensors|model\.safetensors\.index\.json|config\.json|generation_config\.json"
    r"|tokenizer\.json|tokenizer_config\.json|tokenizer\.model|special_tokens_map\.json"
    r"|chat_template\.jinja|README\.md)$"
)


def checkpoint_files(files: dict[str, int]) -> list[str]:
    """The files of a repo listing that conversion needs (top level only)."""
    return sorted(name for name in files if WANTED.match(name))


def fetch_checkpoint(
    settings: Settings, repo: str, progress: ProgressReporter, revision: str | None = None
) -> Path:
    """Download a checkpoint's conversion files; returns its snapshot folder."""
    files = list_files(settings, repo, revision)
    wanted = checkpoint_files(files)
    if not any(name.endswith(".safetensors") for name in wanted):
        raise ModelNotFound(
            f"{repo} has no safetensors weights: the quantizer converts safetensors checkpoints"
        )
    if "config.json" not in wanted:
        raise ModelNotFound(f"{repo} has no config.json: it is not a transformers checkpoint")
    folder = None
    total = sum(files[name] for name in wanted)
    progress.message(f"fetching {len(wanted)} files ({total / 2**20:.0f} MiB) from {repo}")
    for name in wanted:
        path = download(settings, remote_file(settings, repo, name, revision), progress)
        folder = path.parent
    assert folder is not None
    return folder
