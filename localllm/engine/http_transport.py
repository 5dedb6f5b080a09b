"""HTTP for the remote engine: one client per engine, retries with backoff, SSE lines, and
every failure turned into a one-line error that names the engine and what to do."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator

import httpx

from localllm.errors import EngineError, ModelNotFound, RequestError

RETRY_STATUS = frozenset({429, 502, 503, 504})


def client_for(config) -> httpx.Client:
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    timeout = httpx.Timeout(config.timeout_s, connect=10.0)
    # No connection cap of httpx's own (100): --parallel (up to 256) is the cap that counts.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    return httpx.Client(base_url=config.base, headers=headers, timeout=timeout, limits=limits)


def optional(config, client, method: str, path: str, **kwargs) -> dict | None:
    """A route some servers lack: None when it is not there (or not JSON)."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        data = response.json()
        return data if isinstance(data, dict) else None
    except ValueError:
        return None


def call(config, client, method: str, path: str, **kwargs) -> dict:
    """A JSON request, retried as with_retries does; its answer must be a JSON object."""
    response = with_retries(config, lambda: client.request(method, path, **kwargs))
    raise_for_status(config, response)
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise EngineError(f"engine {config.name} at {config.shown} answered {path} with "
                          "something other than a JSON object: is url an OpenAI-compatible "
                          "server's address?")  # fmt: skip
    return data


def with_retries(config, send: Callable[[], httpx.Response],
                 cancel: threading.Event | None = None) -> httpx.Response | None:  # fmt: skip
    """send(), again after a backoff on 429/502/503/504 or a reset connection, up to
    config.retries times; what still fails is a one-line error. None if cancel is set
    while waiting to try again (Ctrl-C must not sit out a backoff)."""
    cancel = cancel or threading.Event()
    for attempt in range(config.retries + 1):
        try:
            response = send()
        except httpx.HTTPError as exc:
            if attempt < config.retries and _retriable(exc):
                if cancel.wait(_backoff(attempt)):
                    return None
                continue
            raise _unreachable(config, exc) from None
        if response.status_code in RETRY_STATUS and attempt < config.retries:
            response.close()
            if cancel.wait(_backoff(attempt, response)):
                return None
            continue
        return response
    raise AssertionError("unreachable")


@contextlib.contextmanager
def retrying(config, client, path: str, body: dict,
             cancel: threading.Event | None = None) -> Iterator[httpx.Response | None]:  # fmt: skip
    """A streamed POST, retried while no answer has started (None: cancelled meanwhile).
    Closing it early is how the server learns to free the slot."""
    response = with_retries(config, lambda: client.send(
        client.build_request("POST", path, json=body), stream=True), cancel)  # fmt: skip
    if response is None:
        yield None
        return
    try:
        if not 200 <= response.status_code < 300:
            response.read()
            raise_for_status(config, response)
        yield response
    finally:
        response.close()


def sse_chunks(response, config) -> Iterator[dict]:
    try:
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            chunk = json.loads(data)
            if isinstance(chunk, dict) and chunk.get("error"):
                raise EngineError(f"engine {config.name}: {_message(chunk)}")
            yield chunk
    except (httpx.HTTPError, ValueError) as exc:
        raise EngineError(f"engine {config.name} stopped answering mid-stream ({exc}): "
                          "run the command again; finished work is kept") from None  # fmt: skip


def _retriable(exc: httpx.HTTPError) -> bool:
    return isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError,
                            httpx.WriteError, httpx.PoolTimeout))  # fmt: skip


def _backoff(attempt: int, response=None) -> float:
    if response is not None:
        try:
            return max(0.0, min(30.0, float(response.headers.get("retry-after", ""))))
        except ValueError:
            pass
    return min(8.0, 0.5 * 2**attempt)


def _unreachable(config, exc: httpx.HTTPError) -> EngineError:
    if isinstance(exc, httpx.TimeoutException):
        return EngineError(f"engine {config.name} at {config.shown} did not answer in time "
                           f"({exc.__class__.__name__}): is it overloaded? raise timeout_s in "
                           f"[engines.{config.name}]")  # fmt: skip
    return EngineError(f"cannot reach engine {config.name} at {config.shown} "
                       f"({exc.__class__.__name__}): is the server running? "
                       f"`localllm engines test {config.name}` checks it")  # fmt: skip


def _message(payload) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if error:
        return str(error)
    if isinstance(payload, dict) and payload.get("detail"):
        return str(payload["detail"])
    return str(payload)[:200]


def raise_for_status(config, response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        where = response.headers.get("location", "elsewhere")
        raise EngineError(f"engine {config.name} redirects to {where}: put that address in "
                          f"url of [engines.{config.name}]")  # fmt: skip
    try:
        message = _message(response.json())
    except ValueError:
        message = response.text[:200] or response.reason_phrase
    name = config.name
    if status in (401, 403):
        key = f"${config.api_key_env}" if config.api_key_env else "api_key_env"
        raise EngineError(f"engine {name} refused the request ({status}: {message}): check the "
                          f"key in {key} (set api_key_env in [engines.{name}])")  # fmt: skip
    if status == 404 and "model" in message.lower():
        raise ModelNotFound(f"engine {name}: {message}")
    if status in (400, 404, 413, 422):
        raise RequestError(f"engine {name} rejected the request ({status}): {message}")
    raise EngineError(f"engine {name} failed ({status}): {message}")
