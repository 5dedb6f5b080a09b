"""The watermark's key, the vocabularies it was used with, and detection.

The key comes from LOCALLLM_WATERMARK_KEY, else `[watermark] key` in config.toml,
else a file generated once in the config folder (readable by its owner only).
It is never printed and never stored in the history. Each model that writes
watermarked text is recorded with a fingerprint of its vocabulary, because the
detector must tokenize a text the way the generating model did: detection with
a model whose vocabulary is not among those recorded is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

from localllm.config import Settings, load_user_config
from localllm.engine.watermark import CONTEXT, DELTA, GAMMA, WatermarkSpec, score
from localllm.errors import ConfigError
from localllm.store.integrity import write_text_atomically

KEY_ENV = "LOCALLLM_WATERMARK_KEY"
THRESHOLD_Z = 4.0
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")


def _key_file(settings: Settings) -> Path:
    return settings.config_dir / "watermark.key"


def _records_file(settings: Settings) -> Path:
    return settings.config_dir / "watermark.json"


def watermark_spec(settings: Settings) -> WatermarkSpec:
    """This installation's key and parameters (the key made and stored on first use)."""
    section = load_user_config(settings).get("watermark", {})
    key = os.environ.get(KEY_ENV) or section.get("key")
    if key is not None and len(key) < 16:
        raise ConfigError(f"the watermark key (${KEY_ENV} or [watermark] key) must be at least "
                          "16 characters: anyone could guess a shorter one")  # fmt: skip
    if key is None:
        key = _stored_key(settings)
    return WatermarkSpec(key.encode("utf-8"), gamma=section.get("gamma", GAMMA),
                         delta=section.get("delta", DELTA),
                         context=section.get("context", CONTEXT))  # fmt: skip


def _stored_key(settings: Settings) -> str:
    path = _key_file(settings)
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key


def vocabulary_fingerprint(engine) -> str:
    """A hash of every token's bytes, in order: two models agree on it only if they
    tokenize every text the same way."""
    digest = hashlib.sha256()
    pieces = getattr(engine, "_piece_bytes", None)
    for token in range(engine._n_vocab):
        digest.update(pieces(token) if pieces else engine.detokenize([token]).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def record_vocabulary(settings: Settings, model: str, fingerprint: str) -> None:
    records = recorded_vocabularies(settings)
    if records.get(model) == fingerprint and list(records)[-1:] == [model]:
        return
    records.pop(model, None)
    records[model] = fingerprint  # last: the model a plain `detect` assumes
    write_text_atomically(_records_file(settings), json.dumps(records, indent=2) + "\n")


def recorded_vocabularies(settings: Settings) -> dict[str, str]:
    try:
        data = json.loads(_records_file(settings).read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def normalise(text: str) -> str:
    """Text pasted from elsewhere, as the model wrote it: NFC, no invisible characters,
    plain spaces and newlines, no trailing spaces on lines."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text))
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


@dataclass(frozen=True)
class Detection:
    model: str
    tokens_scored: int
    green: int
    green_share: float
    z: float
    p_value: float
    threshold_z: float
    watermarked: bool
    gamma: float

    def as_dict(self) -> dict:
        return asdict(self)


def detect(spec: WatermarkSpec, engine, model: str, text: str,
           threshold: float = THRESHOLD_Z) -> Detection:  # fmt: skip
    tokens = engine.tokenize(normalise(text), special=False, add_bos=False)
    result = score(spec, engine._n_vocab, tokens)
    share = result.green / result.tokens if result.tokens else 0.0
    return Detection(model, result.tokens, result.green, round(share, 4), round(result.z, 3),
                     result.p_value, threshold, result.z >= threshold, spec.gamma)  # fmt: skip
