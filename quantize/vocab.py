"""The vocabulary of a checkpoint, in the form GGUF stores it.

Two kinds: GPT-2 style byte-level BPE from tokenizer.json (tokens, merges, the
pre-tokenizer name llama.cpp expects) and SentencePiece from tokenizer.model
(pieces, scores, types). Special tokens, add_bos/add_eos and the chat template
come from tokenizer_config.json in both cases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import gguf

from quantize.checkpoint import Checkpoint
from quantize.errors import CheckpointError, UnsupportedModel
from quantize.pretokenizers import identify
from quantize.spm_model import parse_model

T = gguf.TokenType
SPECIAL_KEYS = ("bos", "eos", "unk", "pad")


@dataclass
class Vocab:
    model: str  # "gpt2" or "llama"
    tokens: list[str]
    types: list[int]
    scores: list[float] | None = None
    merges: list[str] | None = None
    pre: str | None = None
    special_ids: dict[str, int] = field(default_factory=dict)
    add_bos: bool | None = None
    add_eos: bool | None = None
    add_space_prefix: bool | None = None
    chat_template: str | None = None

    def pad_to(self, size: int) -> None:
        """Fill the embedding rows the tokenizer does not name, as llama.cpp expects."""
        for i in range(len(self.tokens), size):
            self.tokens.append(f"[PAD{i}]")
            self.types.append(T.UNUSED)
            if self.scores is not None:
                self.scores.append(-1000.0)

    def write(self, writer: gguf.GGUFWriter) -> None:
        writer.add_tokenizer_model(self.model)
        writer.add_tokenizer_pre(self.pre or "default")
        writer.add_token_list(self.tokens)
        if self.scores is not None:
            writer.add_token_scores(self.scores)
        writer.add_token_types(self.types)
        if self.merges is not None:
            writer.add_token_merges(self.merges)
        setters = {
            "bos": writer.add_bos_token_id,
            "eos": writer.add_eos_token_id,
            "unk": writer.add_unk_token_id,
            "pad": writer.add_pad_token_id,
        }
        for key, token_id in self.special_ids.items():
            setters[key](token_id)
        if self.add_bos is not None:
            writer.add_add_bos_token(self.add_bos)
        if self.add_eos is not None:
            writer.add_add_eos_token(self.add_eos)
        if self.add_space_prefix is not None:
            writer.add_add_space_prefix(self.add_space_prefix)
        if self.chat_template:
            writer.add_chat_template(self.chat_template)


def _token_text(value) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def chat_template(ckpt: Checkpoint) -> str | None:
    template = ckpt.tokenizer_config.get("chat_template")
    if isinstance(template, list):  # named templates: take the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    jinja = ckpt.folder / "chat_template.jinja"
    if not template and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    return template or None


def _apply_tokenizer_config(vocab: Vocab, ckpt: Checkpoint) -> None:
    ids = {text: i for i, text in enumerate(vocab.tokens)}
    for key in SPECIAL_KEYS:
        text = _token_text(ckpt.tokenizer_config.get(f"{key}_token"))
        if text is not None and text in ids:
            vocab.special_ids[key] = ids[text]
        elif key not in vocab.special_ids and isinstance(ckpt.config.get(f"{key}_token_id"), int):
            vocab.special_ids[key] = ckpt.config[f"{key}_token_id"]
    for key in ("add_bos", "add_eos"):
        if isinstance(ckpt.tokenizer_config.get(f"{key}_token"), bool):
            setattr(vocab, key, ckpt.tokenizer_config[f"{key}_token"])
    vocab.chat_template = chat_template(ckpt)


def read_bpe(ckpt: Checkpoint, tokenizer: dict) -> Vocab:
    model = tokenizer.get("model") or {}
    by_id = {int(i): text for text, i in (model.get("vocab") or {}).items()}
    types = {i: T.NORMAL for i in by_id}
    for added in tokenizer.get("added_tokens") or []:
        by_id[int(added["id"])] = added["content"]
        types[int(added["id"])] = T.CONTROL if added.get("special") else T.USER_DEFINED
    size = max(by_id) + 1 if by_id else 0
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    token_types = [types.get(i, T.UNUSED) for i in range(size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    section = tokenizer.get("pre_tokenizer")
    pre = identify(ckpt.folder / "tokenizer.json", section, ckpt.architecture)
    vocab = Vocab(
        "gpt2", tokens, token_types, merges=merges, pre=pre, add_bos=False, add_space_prefix=False
    )
    _apply_tokenizer_config(vocab, ckpt)
    return vocab


def read_spm(ckpt: Checkpoint) -> Vocab:
    spm = parse_model((ckpt.folder / "tokenizer.model").read_bytes())
    vocab = Vocab(
        "llama",
        list(spm.pieces),
        list(spm.types),
        scores=list(spm.scores),
        pre="default",
        add_bos=True,
        add_eos=False,
        add_space_prefix=spm.add_dummy_prefix,
    )
    named = {"unk": spm.unk_id, "bos": spm.bos_id, "eos": spm.eos_id, "pad": spm.pad_id}
    vocab.special_ids = {k: v for k, v in named.items() if 0 <= v < len(spm.pieces)}
    _apply_tokenizer_config(vocab, ckpt)
    return vocab


def _is_byte_level_bpe(tokenizer: dict) -> bool:
    model = tokenizer.get("model") or {}
    return model.get("type") == "BPE" and not model.get("byte_fallback")


def read_vocab(ckpt: Checkpoint, n_vocab: int) -> Vocab:
    """The checkpoint's vocabulary, padded to the embedding's row count."""
    tokenizer = {}
    if ckpt.has_file("tokenizer.json"):
        try:
            tokenizer = json.loads((ckpt.folder / "tokenizer.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(
                f"tokenizer.json is not valid JSON ({exc}): download it again"
            ) from None
    if tokenizer and _is_byte_level_bpe(tokenizer):
        vocab = read_bpe(ckpt, tokenizer)
    elif ckpt.has_file("tokenizer.model"):
        vocab = read_spm(ckpt)
    elif tokenizer:
        kind = (tokenizer.get("model") or {}).get("type")
        raise UnsupportedModel(f"tokenizer.json uses a {kind} model, which is not supported")
    else:
        raise CheckpointError(
            f"{ckpt.folder} has neither tokenizer.json nor tokenizer.model: copy the "
            "tokenizer files next to config.json"
        )
    if len(vocab.tokens) > n_vocab:
        raise CheckpointError(
            f"the tokenizer has {len(vocab.tokens)} tokens but the embedding only {n_vocab} rows"
        )
    vocab.pad_to(n_vocab)
    return vocab
