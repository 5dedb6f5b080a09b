"""The ASGI application: the routers, the gate, error shapes, and the model host.

`create_app(config, settings)` builds everything the routes read from
`app.state`; `localllm serve` runs it under uvicorn. The host loads each model
as a batching engine with `config.parallel` slots, and embeddings models in
embedding mode, and unloads them after their keep-alive.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from functools import partial

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from localllm import __version__
from localllm.config import Settings
from localllm.engine.base import LoadOptions
from localllm.errors import LocalLLMError, RequestError
from localllm.serve.errors import error_response
from localllm.serve.security import LOOPBACK_NAMES, Gate, GateMiddleware, error_body

log = logging.getLogger("localllm.serve")

DEFAULT_PORT = 8434  # not Ollama's 11434, llama-server's 8080 or LM Studio's 1234
LOOPBACK_BINDS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    parallel: int = 4
    n_ctx: int | None = None  # per slot
    gpu_layers: int | None = None
    api_keys: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    keep_alive: float | None = 300.0
    context_policy: str = "off"
    max_queue: int = 64
    max_body: int = 8 * 2**20
    max_tokens_cap: int = 8192
    allow_pull: bool = False
    models: tuple[str, ...] = ()  # loaded at start and kept loaded
    verbose: bool = False
    watermark: bool = False  # every answer carries the installation's watermark
    think: bool | None = None  # thinking models, for requests that do not say
    flash_attn: bool | None = None  # None: on a GPU only (engine/llama.py)

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_BINDS

    def gate(self) -> Gate:
        """The Host allowlist: the loopback names, the bound address and --allow-host names;
        any name when a key guards a server bound beyond loopback and no list was given."""
        if self.api_keys and not self.loopback and not self.allow_hosts:
            return Gate(allowed_hosts=None, api_keys=self.api_keys, max_body=self.max_body)
        names = {*LOOPBACK_NAMES, self.host.lower(), *(h.lower() for h in self.allow_hosts)}
        if not self.loopback:
            import socket

            names.add(socket.gethostname().lower())
        return Gate(allowed_hosts=frozenset(names), api_keys=self.api_keys,
                    max_body=self.max_body)  # fmt: skip


def make_host(settings: Settings, config: ServeConfig):
    from localllm.engine.batch import BatchEngine
    from localllm.engine.embed import EmbeddingEngine
    from localllm.engine.host import Loader, ModelHost
    from localllm.store.resolve import host_resolver

    resolve = host_resolver(settings, allow_fetch=config.allow_pull, allow_paths=False)
    batch = partial(BatchEngine.load, parallel=config.parallel, max_queue=config.max_queue)
    loaders = {"chat": Loader(batch, n_seq=config.parallel), "embed": Loader(EmbeddingEngine.load)}
    options = LoadOptions(n_ctx=config.n_ctx, n_gpu_layers=config.gpu_layers,
                          flash_attn=config.flash_attn, verbose=config.verbose)  # fmt: skip
    return ModelHost(resolve, loaders, options=options, keep_alive=config.keep_alive, sweep=True)


def create_app(config: ServeConfig, settings: Settings, host=None) -> FastAPI:
    from localllm.serve import llama_api, ollama_api, openai_api
    from localllm.serve.models import ServerModels
    from localllm.serve.runner import Runner

    host = host or make_host(settings, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        for name in config.models:  # preloaded models stay for the server's lifetime
            loaded = await anyio.to_thread.run_sync(lambda n=name: host.acquire(n, pin=True))
            host.release(loaded)
            log.info("loaded %s (%d slots of %d tokens)", loaded.name, config.parallel,
                     loaded.engine.n_ctx)  # fmt: skip
        yield
        await anyio.to_thread.run_sync(host.close)

    app = FastAPI(title="localllm", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)  # fmt: skip
    app.state.host = host
    app.state.runner = Runner(host, default_policy=config.context_policy,
                              max_tokens_cap=config.max_tokens_cap,
                              watermark=_watermark(settings, config),
                              think=config.think)  # fmt: skip
    app.state.catalog = ServerModels(settings, host)
    app.state.allow_pull = config.allow_pull
    app.state.default_model = config.models[0] if config.models else None
    app.state.embed = partial(_embed, host, _embedding_model(settings))
    for router in (openai_api.router, ollama_api.router, llama_api.router):
        app.include_router(router)

    @app.get("/")
    async def root():
        return JSONResponse({"status": "localllm is running", "version": __version__})

    @app.exception_handler(LocalLLMError)
    async def on_localllm_error(request: Request, exc: LocalLLMError):
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError):
        return error_response(request, RequestError(str(exc.errors()[:1])))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        body = error_body(request.url.path, 500, f"internal error: {type(exc).__name__}: {exc}",
                          "server_error")  # fmt: skip
        return JSONResponse(content=json.loads(body), status_code=500)

    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["*"], allow_headers=["*"])  # fmt: skip
    app.add_middleware(GateMiddleware, gate=config.gate())
    return app


def _watermark(settings: Settings, config: ServeConfig):
    """The key and a recorder of the models it marks with, when --watermark is on."""
    if not config.watermark:
        return None
    from localllm.watermarking import watermark_spec

    return watermark_spec(settings), settings


def _embedding_model(settings: Settings) -> str | None:
    """[index] embedding_model: what a request naming no model embeds with, so other RAG
    tools on the machine get the vectors `localllm index` makes."""
    from localllm.config import load_user_config

    return load_user_config(settings).get("index", {}).get("embedding_model")


async def _embed(host, default: str | None, model: str | None, inputs: list[str]):
    """Vectors for inputs from model's embedding engine: (vectors, tokens used, model name)."""

    def work():
        with host.use(model or default, "embed") as loaded:
            vectors, used = loaded.engine.embed(inputs)
            return vectors, used, loaded.name

    return await anyio.to_thread.run_sync(work)
