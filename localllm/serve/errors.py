"""LocalLLMError -> HTTP status and body, in the shape of the API the path belongs to."""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.responses import JSONResponse

from localllm import errors
from localllm.serve.security import error_body


class Forbidden(errors.LocalLLMError, PermissionError):
    """An action this server was not started to allow (e.g. pulls without --allow-pull)."""


# (error class, HTTP status, OpenAI error type, OpenAI code); the first match wins.
STATUS = (
    (errors.ModelNotFound, 404, "invalid_request_error", "model_not_found"),
    (errors.ContextOverflow, 400, "invalid_request_error", "context_length_exceeded"),
    (errors.EngineBusy, 503, "server_error", "server_busy"),
    (Forbidden, 403, "permission_error", None),
    (errors.ModelLoadError, 500, "server_error", "model_load_failed"),
    (errors.FetchError, 502, "server_error", None),
    (errors.OfflineError, 502, "server_error", None),
    (errors.LocalLLMError, 400, "invalid_request_error", None),
)


def error_response(request: Request, exc: errors.LocalLLMError) -> JSONResponse:
    status, openai_type, code = next(row[1:] for row in STATUS if isinstance(exc, row[0]))
    body = error_body(request.url.path, status, str(exc), openai_type, code)
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(content=json.loads(body), status_code=status, headers=headers)
