"""The server's gate: Host allowlist, API keys and body caps, before any route runs.

- Host header: a browser page on attacker.example that resolves its name to
  127.0.0.1 (DNS rebinding) still sends `Host: attacker.example`; only the
  names this server is reached by are let through.
- API keys: `Authorization: Bearer KEY` (what the openai client sends) or
  `X-API-Key`; compared in constant time. /health stays open for probes.
- Bodies: a declared Content-Length over the cap is refused before reading,
  and a chunked body is counted as it arrives.

Errors come in the shape of the API the path belongs to (Ollama's /api/...
or OpenAI's), so clients show them as their own.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
OPEN_PATHS = ("/health",)


@dataclass(frozen=True)
class Gate:
    allowed_hosts: frozenset[str] | None  # None: any Host (an API key guards the server)
    api_keys: tuple[str, ...] = ()
    max_body: int = 8 * 2**20
    open_paths: tuple[str, ...] = field(default=OPEN_PATHS)

    def host_allowed(self, header: str) -> bool:
        if self.allowed_hosts is None:
            return True
        name = header.strip().lower()
        if name.startswith("["):  # [::1]:8434
            name = name[: name.find("]") + 1]
        elif name.count(":") == 1:
            name = name.rsplit(":", 1)[0]
        return name in self.allowed_hosts

    def key_allowed(self, headers: dict[str, str]) -> bool:
        if not self.api_keys:
            return True
        auth = headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        given = given or headers.get("x-api-key", "").strip()
        return any(hmac.compare_digest(given.encode(), k.encode()) for k in self.api_keys)


def error_body(path: str, status: int, message: str, kind: str, code: str | None = None) -> bytes:
    """The error in the shape of the API path belongs to."""
    if path.startswith("/api/"):
        return json.dumps({"error": message}).encode()
    err = {"message": message, "type": kind, "param": None, "code": code}
    return json.dumps({"error": err}).encode()


class _BodyTooLarge(Exception):
    pass


class GateMiddleware:
    """Pure ASGI middleware, so streaming responses pass through untouched."""

    def __init__(self, app, gate: Gate):
        self.app = app
        self.gate = gate

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope.get("path", "")
        refusal = self._refusal(path, headers)
        if refusal is not None:
            return await _respond(send, path, *refusal)
        seen = 0
        limit = self.gate.max_body

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, send)
        except _BodyTooLarge:
            await _respond(send, path, 413, self._too_large(), "invalid_request_error")

    def _too_large(self) -> str:
        return (f"the request body is over the server's limit of {self.gate.max_body} bytes: "
                "send less, or start the server with a larger --max-body")  # fmt: skip

    def _refusal(self, path: str, headers: dict[str, str]):
        if not self.gate.host_allowed(headers.get("host", "")):
            return (403, f"Host {headers.get('host', '')!r} is not one this server answers to "
                    "(DNS rebinding guard): use localhost, or start the server with "
                    "--allow-host NAME", "permission_error")  # fmt: skip
        if path not in self.gate.open_paths and not self.gate.key_allowed(headers):
            return (401, "a valid API key is required: send `Authorization: Bearer KEY` "
                    "(the key the server was started with)", "authentication_error",
                    "invalid_api_key")  # fmt: skip
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.gate.max_body:
            return (413, self._too_large(), "invalid_request_error")
        return None


async def _respond(send, path: str, status: int, message: str, kind: str, code=None) -> None:
    body = error_body(path, status, message, kind, code)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
