"""What every API route shares: a model from the host, a prompt, a stream of events.

Routes describe a generation as a `Job` (messages or a raw prompt, sampling,
a JSON schema or forced tool call, the context policy); `Runner.run` acquires
the model from the host (loading it in a worker thread), builds the prompt
(also in a thread: the summary policy generates), submits it to the batching
engine and yields its events on the event loop. Leaving the iteration early
(a client that went away) cancels the request, which frees its slot at the
engine's next step, and hands the model back to the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import anyio

from localllm.chat.prompting import build_prompt, normalize_messages
from localllm.chat.session import fold_turns
from localllm.chat.tools import forced_call_schema, tool_functions
from localllm.engine.base import Finished, Reasoning, SamplingParams, Token
from localllm.engine.grammar import ANY_JSON_OBJECT, schema_to_grammar
from localllm.engine.reasoning import engine_thinking, splitter_for, starts_inside
from localllm.errors import ContextOverflow, RequestError

POLICIES = ("off", "window", "summary")


@dataclass
class Job:
    model: str | None
    params: SamplingParams
    messages: list[dict] | None = None  # chat; None for a raw completion
    prompt: str | None = None
    prompt_tokens: list[int] | None = None  # a raw completion's prompt as token ids
    schema: dict | None = None  # the answer must be JSON valid against it
    tools: list[dict] | None = None
    tool_choice: object = "auto"  # "none" | "auto" | "required" | {"function": {"name"}}
    policy: str = "off"
    n_ctx: int | None = None
    keep_alive: object = "default"
    max_tokens_given: bool = False
    think: bool | None = None  # thinking models: reason first or not; None: the server's


@dataclass
class Outcome:
    """Filled while a job runs; read by routes for usage and the final chunk."""

    model: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    prompt_tokens: int = 0
    events: list = field(default_factory=list)  # context events (dropped, folded, cut)
    forced_tool: bool = False
    functions: dict = field(default_factory=dict)
    load_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    finished: Finished | None = None
    prompt_token_ids: list[int] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)  # a thinking model's, apart

    @property
    def reasoning_text(self) -> str | None:
        return "".join(self.reasoning).strip() or None


class Runner:
    def __init__(self, host, *, default_policy: str = "off", max_tokens_cap: int = 8192,
                 watermark=None, think: bool | None = None):  # fmt: skip
        self.host = host
        self.think = think  # serve --think / --no-think: for requests that do not say
        self.default_policy = default_policy
        self.max_tokens_cap = max_tokens_cap
        # (WatermarkSpec, Settings) with serve --watermark: set on every request, whatever
        # it asks, and each model it marks with recorded once for the detector.
        self.watermark = watermark
        self._recorded: set[str] = set()

    async def acquire(self, model: str | None, kind: str = "chat", **kwargs):
        # A model already loaded is taken on the loop; resolving and loading go to a thread.
        loaded = self.host.acquire_loaded(model, kind, **kwargs)
        if loaded is not None:
            return loaded
        return await anyio.to_thread.run_sync(lambda: self.host.acquire(model, kind, **kwargs))

    async def run(self, job: Job, outcome: Outcome) -> AsyncIterator[Token | Finished]:
        started = time.perf_counter()
        loaded = await self.acquire(job.model, n_ctx=job.n_ctx, keep_alive=job.keep_alive)
        outcome.load_s = time.perf_counter() - started
        outcome.model = loaded.name
        engine = loaded.engine
        try:
            tokens, params = await anyio.to_thread.run_sync(self._prepare, engine, job, outcome)
            outcome.prompt_tokens = len(tokens)
            outcome.prompt_token_ids = tokens
            events = _events(engine, tokens, params)
            thinking = engine_thinking(engine)
            if job.messages is not None and thinking.format is not None:
                inside = starts_inside(engine, tokens, thinking.format)
                events = _split(events, splitter_for(thinking.format, inside), outcome)
            async for event in events:
                if isinstance(event, Finished):
                    outcome.finished = event
                    if outcome.reasoning:  # counted apart, as OpenAI's reasoning_tokens
                        count = engine.tokenize("".join(outcome.reasoning), special=False,
                                                add_bos=False)  # fmt: skip
                        event.stats.reasoning_tokens = len(count)
                yield event
        finally:
            self.host.release(loaded)

    def _prepare(self, engine, job: Job, outcome: Outcome) -> tuple[list[int], SamplingParams]:
        """The prompt's tokens and the sampling (with its grammar) for job on engine."""
        params = self._marked(engine, outcome.model, job.params)
        if params.max_tokens > self.max_tokens_cap:
            raise RequestError(f"max_tokens {params.max_tokens} is over this server's cap of "
                               f"{self.max_tokens_cap}: ask for fewer")  # fmt: skip
        schema = job.schema
        functions = tool_functions(job.tools)
        outcome.functions = functions
        choice = job.tool_choice
        if functions and (choice == "required" or isinstance(choice, dict)):
            name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
            schema, outcome.forced_tool = forced_call_schema(functions, name), True
        if schema is not None:
            if params.grammar is not None:
                raise RequestError("give grammar or a JSON schema (response_format, a forced "
                                   "tool call), not both")  # fmt: skip
            params = replace(params, grammar=schema_to_grammar(schema))
        if job.messages is None:
            tokens = job.prompt_tokens or engine.tokenize(job.prompt or "")
            if any(t < 0 or t >= engine.n_vocab for t in tokens):
                raise RequestError(f"token ids must be between 0 and {engine.n_vocab - 1}")
            self._check_room(engine, len(tokens), job)
            return tokens, self._room(engine, len(tokens), params, job)
        messages = normalize_messages(job.messages)
        tools = job.tools if functions and choice != "none" else None
        policy = job.policy or self.default_policy
        if policy not in POLICIES:
            raise RequestError(f"context_policy must be one of {', '.join(POLICIES)}")
        reserve = params.max_tokens if job.max_tokens_given else 1
        fold = lambda memory, turns: fold_turns(engine, memory, turns)  # noqa: E731
        think = job.think if job.think is not None else self.think
        switch = engine_thinking(engine).template_vars(think, outcome.model)
        prompt = build_prompt(engine, messages, reserve=reserve, policy=policy, tools=tools,
                              fold=fold, template_vars=switch)  # fmt: skip
        outcome.events = [e.as_dict() for e in prompt.events]
        return prompt.tokens, self._room(engine, len(prompt.tokens), params, job)

    def _marked(self, engine, model: str, params: SamplingParams) -> SamplingParams:
        if self.watermark is None:
            return params
        spec, settings = self.watermark
        if model not in self._recorded:
            from localllm.watermarking import record_vocabulary, vocabulary_fingerprint

            record_vocabulary(settings, model, vocabulary_fingerprint(engine))
            self._recorded.add(model)
        return replace(params, watermark=spec)

    def _check_room(self, engine, n: int, job: Job) -> None:
        reserve = job.params.max_tokens if job.max_tokens_given else 1
        if n + reserve > engine.n_ctx:
            raise ContextOverflow(
                f"this model's context window is {engine.n_ctx} tokens, but the prompt is {n} "
                f"tokens and {reserve} more were asked for the answer: shorten the prompt or "
                "max_tokens"
            )

    def _room(self, engine, n: int, params: SamplingParams, job: Job) -> SamplingParams:
        # Without max_tokens the answer may fill the window, as OpenAI's API does.
        if not job.max_tokens_given:
            return replace(params, max_tokens=max(1, engine.n_ctx - n))
        return params


async def _split(events, splitter, outcome: Outcome):
    """A chat answer's events with a thinking model's reasoning apart (Reasoning events),
    and kept in the outcome for the final message."""
    async for event in events:
        parts = splitter.feed(event.text) if isinstance(event, Token) else ()
        if isinstance(event, Finished):
            parts = splitter.finish()
        for part in parts:
            if isinstance(part, Reasoning):
                outcome.reasoning.append(part.text)
            yield part
        if not isinstance(event, Token):
            yield event


def json_mode_schema() -> dict:
    return dict(ANY_JSON_OBJECT)


async def _events(engine, tokens: list[int], params: SamplingParams):
    """The engine's events for one request, delivered on this event loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()

    def sink(event) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, event)

    engine.submit(tokens, params, sink=sink, cancel=cancel)
    try:
        while True:
            event = await queue.get()
            if isinstance(event, BaseException):
                raise event
            yield event
            if isinstance(event, Finished):
                return
    finally:
        cancel.set()
