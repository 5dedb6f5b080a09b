"""An OpenAI-compatible endpoint as an engine: vLLM, llama-server, Ollama, LM Studio, localllm.

It offers what the in-process engine offers, so run, chat and summarize use it
unchanged. Where the server can count (llama-server, `localllm serve`: the
/tokenize, /detokenize and /apply-template routes) tokens are exact and
prompts go to /v1/completions as token ids, so the server computes exactly the
prompt the caller fitted. Where it cannot (Ollama, LM Studio, vLLM's OpenAI
routes alone), a stand-in tokenizer (engine/pseudo_tokens.py) counts high,
chats go to /v1/chat/completions as messages, and the window shrinks when the
server's reported usage shows the estimate was low.

Requests that fail before an answer starts (429, 503, a reset connection) are
retried with backoff; what cannot be retried is a one-line error that names
the engine and what to do.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from localllm.engine.base import (
    EngineFacts,
    Event,
    Finished,
    GenerationStats,
    LoadPlan,
    Reasoning,
    SamplingParams,
    Token,
)
from localllm.engine.http_transport import call, client_for, optional, retrying, sse_chunks
from localllm.engine.pseudo_tokens import CHAT_MARK, PseudoTokenizer, pack_chat, unpack_chat
from localllm.errors import (
    ContextOverflow,
    ModelNotFound,
    RequestError,
)
from localllm.gguf_meta import GGUFInfo

ASSUMED_CTX = 4096  # when the server does not say its window and the config does not either


@dataclass(frozen=True)
class EndpointConfig:
    """One named engine of config.toml ([engines.NAME]), with its key read from the env."""

    name: str
    url: str
    model: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None  # named in errors, never its value
    n_ctx: int | None = None
    parallel: int | None = None
    timeout_s: float = 600.0
    retries: int = 4

    @property
    def base(self) -> str:
        url = self.url.rstrip("/")
        return url[:-3] if url.endswith("/v1") else url

    @property
    def shown(self) -> str:
        """The address for messages: without a user:password@ part, which is a secret."""
        return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", self.base)


class HttpEngine:
    """A model on an OpenAI-compatible server; `connect` probes what the server offers."""

    def __init__(self, config: EndpointConfig, model: str, *, n_ctx: int, parallel: int,
                 exact: bool, notes: tuple[str, ...] = (),
                 client: httpx.Client | None = None, chat_template: str | None = None):  # fmt: skip
        self.config = config
        self.model = model
        self.exact = exact
        self.parallel = parallel
        self._server_ctx = n_ctx
        self._scale = 1.0  # real tokens per estimated token, once usage shows more than 1
        self._pseudo = None if exact else PseudoTokenizer()
        self._client = client or client_for(config)
        where = f"engine {config.name} at {config.shown}"
        # Callers read the model's name and whether it chats from GGUF facts; the server has
        # the file, so these stand in for them.
        # The template itself where the server gives it (llama-server's and localllm's
        # /props): a thinking model's reasoning is then found in a raw completion too.
        template = chat_template or f"(on {where})"
        metadata = {"general.name": model, "tokenizer.chat_template": template}
        self.info = GGUFInfo(None, 0, 0, metadata, (), 0)
        self.plan = LoadPlan(n_ctx=n_ctx, n_threads=0, n_gpu_layers=0, flash_attn=None,
                             notes=(f"text goes to {where}", *notes),
                             offload_reason=f"the model runs on {where}")  # fmt: skip
        self.load_s = 0.0

    @classmethod
    def connect(cls, config: EndpointConfig, model: str | None = None) -> HttpEngine:
        """Reach the server, pick the model, and find its window, slots and tokenizer."""
        client = client_for(config)
        try:
            return cls._probe(config, model or config.model, client)
        except BaseException:
            client.close()
            raise

    @classmethod
    def _probe(cls, config: EndpointConfig, wanted: str | None, client) -> HttpEngine:
        started = time.perf_counter()
        listed = call(config, client, "GET", "/v1/models").get("data") or []
        ids = [m.get("id") for m in listed if isinstance(m, dict)]
        model = wanted or (ids[0] if ids else None)
        if model is None:
            raise ModelNotFound(
                f"engine {config.name} lists no models: name one with -m MODEL@{config.name} "
                f"or model = in [engines.{config.name}]"
            )
        if ids and model not in ids:
            model = _listed_as(model, ids, config)
        entry = next((m for m in listed if m.get("id") == model), {})
        props = optional(config, client, "GET", "/props", params={"model": model}) or {}
        health = optional(config, client, "GET", "/health") or {}
        notes = []
        n_ctx = config.n_ctx or _window(entry, props)
        if n_ctx is None:
            n_ctx = ASSUMED_CTX
            notes.append(
                f"engine {config.name} does not say its context window: assuming "
                f"{ASSUMED_CTX} tokens (set n_ctx in [engines.{config.name}])"
            )
        parallel = config.parallel or props.get("total_slots") or health.get("slots_total") or 1
        exact = _counts_exactly(config, client, model)
        if not exact:
            notes.append(f"engine {config.name} cannot count tokens: counts are estimated "
                         "high, and corrected by the usage it reports")  # fmt: skip
        template = props.get("chat_template")
        engine = cls(config, model, n_ctx=int(n_ctx), parallel=int(parallel), exact=exact,
                     notes=tuple(notes), client=client,
                     chat_template=template if isinstance(template, str) else None)  # fmt: skip
        engine.load_s = time.perf_counter() - started
        return engine

    # -- facts -------------------------------------------------------------------

    @property
    def cache_id(self) -> str:
        """What cached work done by this engine is keyed on: the served model and where."""
        return f"{self.model}@{self.config.shown}"

    @property
    def backend(self) -> str:
        return f"remote ({self.config.name})"

    @property
    def n_ctx(self) -> int:
        return max(64, int(self._server_ctx / self._scale))

    @property
    def facts(self) -> EngineFacts:
        return EngineFacts(name=self.model, backend=self.backend, n_ctx=self.n_ctx,
                           parallel=self.parallel, exact_tokens=self.exact,
                           where=f"engine {self.config.name} at {self.config.shown}")  # fmt: skip

    # -- tokens ------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = True) -> list[int]:
        if self._pseudo is not None:
            return self._pseudo.tokenize(text)
        body = {"content": text, "add_special": add_bos, "parse_special": special,
                "model": self.model}  # fmt: skip
        return list(self._post("/tokenize", body)["tokens"])

    def detokenize(self, tokens: list[int]) -> str:
        if self._pseudo is not None:
            return self._pseudo.detokenize(tokens)
        return self._post("/detokenize", {"tokens": list(tokens), "model": self.model})["content"]

    def render_chat(self, messages: list[dict], *, add_generation_prompt: bool = True,
                    **template_vars) -> str:  # fmt: skip
        if self._pseudo is not None:
            return pack_chat(messages, template_vars)
        body = {"messages": messages, "model": self.model, **template_vars}
        return self._post("/apply-template", body)["prompt"]

    def chat_tokens(self, messages: list[dict], **template_vars) -> list[int]:
        return self.tokenize(self.render_chat(messages, **template_vars))

    # -- generation --------------------------------------------------------------

    def stream(self, prompt_tokens: list[int], params: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[Event]:  # fmt: skip
        if len(prompt_tokens) >= self.n_ctx:
            raise ContextOverflow(
                f"the prompt is {len(prompt_tokens)} tokens but engine {self.config.name}'s "
                f"window is {self.n_ctx}: shorten it"
            )
        path, body = self._request_body(prompt_tokens, params)
        cancel = cancel or threading.Event()
        started = time.perf_counter()
        stats = GenerationStats(prompt_tokens=len(prompt_tokens), stop_reason="length")
        first = last = None
        with self._open_stream(path, body, cancel) as response:
            if response is None:
                stats.stop_reason = "cancelled"
            for chunk in sse_chunks(response, self.config) if response is not None else ():
                if cancel.is_set():
                    stats.stop_reason = "cancelled"
                    break
                text, finish = _chunk_text(chunk)
                if chunk.get("usage"):
                    self._take_usage(chunk["usage"], stats, len(prompt_tokens))
                if reasoning := _chunk_reasoning(chunk):  # the server split it off already
                    first = first or time.perf_counter()
                    yield Reasoning(reasoning)
                if text:
                    now = time.perf_counter()
                    first, last = first or now, now
                    stats.completion_tokens += 1  # one chunk per token; usage corrects it
                    yield Token(text)
                if finish:
                    stats.stop_reason = _STOP.get(finish, "stop")
                    if finish == "stop" and not params.stop:
                        stats.stop_reason = "eos"
        if first is not None:
            stats.ttft_s = stats.prefill_s = first - started
            stats.decode_s = last - first
        yield Finished(stats=stats, stopped=stats.stop_reason == "cancelled")

    def _request_body(self, prompt_tokens: list[int], params: SamplingParams) -> tuple[str, dict]:
        if params.watermark is not None:
            raise RequestError(
                f"engine {self.config.name} cannot add this machine's watermark: "
                "generate here, or run `localllm serve --watermark` there"
            )
        # As the in-process engine does: the reply gets what the window has left (vLLM refuses
        # a prompt plus max_tokens beyond its max_model_len).
        room = max(1, self.n_ctx - len(prompt_tokens))
        body = {"model": self.model, "stream": True, "max_tokens": min(params.max_tokens, room),
                "temperature": params.temperature, "top_p": params.top_p,
                "stream_options": {"include_usage": True}}  # fmt: skip
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.top_k:
            body["top_k"] = params.top_k
        if params.min_p:
            body["min_p"] = params.min_p
        if params.repeat_penalty != 1.0:
            body["repeat_penalty"] = params.repeat_penalty
        if params.grammar is not None:
            body["grammar"] = params.grammar  # llama-server's and localllm's extension
        if self._pseudo is None:
            return "/v1/completions", {**body, "prompt": list(prompt_tokens)}
        text = self._pseudo.detokenize(prompt_tokens)
        if text.startswith(CHAT_MARK):
            chat = unpack_chat(text)
            # Template switches (enable_thinking) go where vLLM, llama-server and SGLang
            # read them; messages and tools are the API's own fields.
            switches = {k: chat.pop(k) for k in list(chat) if k not in ("messages", "tools")}
            if switches:
                chat["chat_template_kwargs"] = switches
            return "/v1/chat/completions", {**body, **chat}
        return "/v1/completions", {**body, "prompt": text}

    def _take_usage(self, usage: dict, stats: GenerationStats, estimated: int) -> None:
        real = usage.get("prompt_tokens")
        if isinstance(real, int) and real > 0:
            stats.prompt_tokens = real
            if self._pseudo is not None and estimated:
                # Only ever shrinks the window: an estimate that was low once stays suspect.
                self._scale = max(self._scale, real / estimated)
        details = usage.get("prompt_tokens_details") or {}
        stats.cached_tokens = int(details.get("cached_tokens") or 0)
        if isinstance(usage.get("completion_tokens"), int):
            stats.completion_tokens = usage["completion_tokens"]

    # -- HTTP --------------------------------------------------------------------

    def _post(self, path: str, body: dict) -> dict:
        return call(self.config, self._client, "POST", path, json=body)

    def _open_stream(self, path: str, body: dict, cancel: threading.Event | None = None):
        return retrying(self.config, self._client, path, body, cancel)

    def close(self) -> None:
        self._client.close()


_STOP = {"length": "length", "stop": "stop", "tool_calls": "stop", "content_filter": "stop"}


def _listed_as(model: str, ids: list[str], config: EndpointConfig) -> str:
    """The listed id a short name means (Ollama's llama3 is llama3:latest, localllm's
    smollm2-135m is smollm2-135m:q4_1) when exactly one matches; else a clear error."""
    tagged = [i for i in ids if i.startswith(model + ":")]
    if len(tagged) == 1:
        return tagged[0]
    raise ModelNotFound(f"engine {config.name} has no model {model!r}; it has: "
                        + ", ".join(ids[:12]))  # fmt: skip


def _window(entry: dict, props: dict) -> int | None:
    """The context window the server reports: vLLM's max_model_len, llama-server's n_ctx."""
    for value in (entry.get("max_model_len"), entry.get("context_length"),
                  (props.get("default_generation_settings") or {}).get("n_ctx")):  # fmt: skip
        if isinstance(value, int) and value > 0:
            return value
    return None


def _counts_exactly(config: EndpointConfig, client, model: str) -> bool:
    """Whether the server tokenizes and renders chats for us (llama-server, localllm)."""
    tokens = optional(config, client, "POST", "/tokenize", json={"content": "Hi", "model": model})
    if not (isinstance(tokens, dict) and isinstance(tokens.get("tokens"), list)):
        return False
    chat = {"messages": [{"role": "user", "content": "Hi"}], "model": model}
    rendered = optional(config, client, "POST", "/apply-template", json=chat)
    return isinstance(rendered, dict) and isinstance(rendered.get("prompt"), str)


def _chunk_reasoning(chunk: dict) -> str:
    """A thinking model's reasoning as vLLM, llama-server, SGLang and localllm stream it:
    `reasoning_content` (or vLLM's newer `reasoning`) beside the answer's `content`."""
    choices = chunk.get("choices") or []
    delta = (choices[0].get("delta") or {}) if choices else {}
    return delta.get("reasoning_content") or delta.get("reasoning") or ""


def _chunk_text(chunk: dict) -> tuple[str, str | None]:
    choices = chunk.get("choices") or []
    if not choices:
        return "", None
    choice = choices[0]
    delta = choice.get("delta")
    text = (delta or {}).get("content") if delta is not None else choice.get("text")
    return text or "", choice.get("finish_reason")
