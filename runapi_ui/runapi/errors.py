"""RunAPI's errors: one hierarchy, built from the HTTP answer in one place.

Names follow the official SDK (`runapi.core.errors`) so code written against it reads
the same. Every message is a sentence a user can act on: what happened, what to do.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

_HTML_TITLE = re.compile(r"<title>(.*?)</title>|<h1>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_MAX_DETAIL_CHARS = 300
# A fresh id on every request, echoed and logged by RunAPI (at most 512 printable ASCII).
CLIENT_REQUEST_ID_HEADER = "X-Client-Request-Id"
# What a visitor reads when the fault is ours, not RunAPI's (the log has the traceback).
UNEXPECTED_MESSAGE = (
    "Something unexpected went wrong in the playground. Try again, and if it repeats, "
    "report it with the server log."
)


class RunAPIError(Exception):
    """Base of every error the client raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        request_id: str | None = None,
        client_request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail  # what the service said, verbatim (trimmed)
        self.request_id = request_id  # the service's X-Request-Id
        # Our X-Client-Request-Id, which RunAPI echoes and logs: what to quote to its support.
        self.client_request_id = client_request_id

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields, not from its constructor's arguments (some subclasses
        # take keyword-only ones): errors reach the app from its RunAPI worker process.
        return _rebuilt, (type(self), self.message, self.__dict__.copy())


def _rebuilt(cls: type[RunAPIError], message: str, fields: dict[str, Any]) -> RunAPIError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(fields)
    return error


class AuthenticationError(RunAPIError):
    """The key is missing, wrong or revoked (401)."""


class InsufficientCreditsError(RunAPIError):
    """The account cannot pay for the generation (402)."""


class ValidationError(RunAPIError):
    """The request is invalid: caught locally before sending, or answered 400/422."""

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class NotFoundError(RunAPIError):
    """No such task or route (404)."""


class ConflictError(RunAPIError):
    """An Idempotency-Key was reused with a different request body (409)."""


class RateLimitError(RunAPIError):
    """Too many requests (429); `retry_after` is the service's hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(RunAPIError):
    """RunAPI itself failed (5xx), including HTML error pages from a proxy."""


class ModelUnavailableError(RunAPIError):
    """RunAPI does not serve this model right now: a 503 on create, or the price schedule's
    `catalog_status` (maintenance, disabled)."""

    def __init__(self, message: str, *, model: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.model = model


class NetworkError(RunAPIError):
    """RunAPI could not be reached, or the connection broke mid-answer."""


class ImageDownloadError(RunAPIError):
    """An image could not be downloaded, or what came was not a usable image."""


class TaskFailedError(RunAPIError):
    """The task ended as failed; `reason` is the service's own words."""

    def __init__(self, message: str, *, task_id: str, reason: str, **kwargs: Any) -> None:
        super().__init__(message, detail=reason, **kwargs)
        self.task_id = task_id
        self.reason = reason


class TaskTimeoutError(RunAPIError):
    """The wait's deadline passed; the task may still finish: wait on `task_id` again."""

    def __init__(self, message: str, *, task_id: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.task_id = task_id


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL_CHARS else text[: _MAX_DETAIL_CHARS - 1] + "…"


def _service_message(body: Any) -> str | None:
    """The human part of an error body, whichever shape RunAPI used."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("code")
    for candidate in (error, body.get("message"), body.get("detail")):
        if isinstance(candidate, str) and candidate.strip():
            return _trim(candidate)
    return None


def _field_errors(body: Any) -> dict[str, str]:
    """`{"errors": {"prompt": ["too long"]}}` as {"prompt": "too long"}."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, dict):
        return {}
    flat: dict[str, str] = {}
    for field, problems in errors.items():
        items = problems if isinstance(problems, list) else [problems]
        flat[str(field)] = "; ".join(str(item) for item in items)
    return flat


def _read_body(response: httpx.Response) -> tuple[Any, str | None]:
    """The JSON body if it is JSON; for an HTML page or plain text, its gist."""
    text = response.text
    try:
        return json.loads(text), None
    except ValueError:
        pass
    match = _HTML_TITLE.search(text)
    if match:
        return None, _trim(_TAG.sub("", match.group(1) or match.group(2) or ""))
    return None, _trim(text) if text.strip() else None


def _answer_context(response: httpx.Response) -> dict[str, Any]:
    """The ids an error from this answer carries: the service's and the one we sent."""
    return {
        "status": response.status_code,
        "request_id": response.headers.get("x-request-id"),
        "client_request_id": response.request.headers.get(CLIENT_REQUEST_ID_HEADER),
    }


def _quoting(message: str, context: dict[str, Any]) -> str:
    """`message`, naming the request id a visitor can quote to RunAPI's support."""
    request_id = context.get("client_request_id") or context.get("request_id")
    return f"{message} (request id {request_id})" if request_id else message


def error_from_response(response: httpx.Response) -> RunAPIError:
    """The error for a non-success answer, with a message that says what to do and names
    the request id to quote to RunAPI's support."""
    body, page_gist = _read_body(response)
    said = _service_message(body) or page_gist
    context = _answer_context(response)
    kind, message, extra = _reading(response, body, said)
    return kind(_quoting(message, context), detail=said, **context, **extra)


def _reading(
    response: httpx.Response, body: Any, said: str | None
) -> tuple[type[RunAPIError], str, dict[str, Any]]:
    """What a non-success answer means: the error class, its message, its own fields."""
    status = response.status_code
    because = f": {said}" if said else ""
    if status == 401 or status == 403:
        return (
            AuthenticationError,
            f"RunAPI did not accept the API key (HTTP {status}{because}). "
            "Check the key on your RunAPI dashboard and enter it again.",
            {},
        )
    if status == 402:
        return (
            InsufficientCreditsError,
            f"Your RunAPI account does not have enough credits for this generation"
            f" (HTTP 402{because}). Top up your balance, then generate again.",
            {},
        )
    if status in (400, 422):
        fields = _field_errors(body)
        what = "; ".join(f"{name}: {problem}" for name, problem in fields.items()) or said
        return (
            ValidationError,
            f"RunAPI rejected the request ({what or f'HTTP {status}'}). "
            "Change the input and try again.",
            {"field": next(iter(fields), None)},
        )
    if status == 404:
        return (
            NotFoundError,
            f"RunAPI has no such task or endpoint (HTTP 404{because}). "
            "Check the task id and RUNAPI_BASE_URL.",
            {},
        )
    if status == 409:
        return (
            ConflictError,
            f"RunAPI refused a repeated request that differs from the first (HTTP 409{because}). "
            "Generate again to start a fresh task.",
            {},
        )
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        wait = f"Wait {retry_after:.0f} s" if retry_after else "Wait a moment"
        return (
            RateLimitError,
            f"RunAPI is rate limiting requests (HTTP 429{because}). "
            f"{wait} and try again, or generate fewer images at once.",
            {"retry_after": retry_after},
        )
    if status >= 500:
        return (
            ServerError,
            f"RunAPI is having trouble (HTTP {status}{because}). "
            "This is on RunAPI's side: try again in a minute.",
            {},
        )
    return (
        RunAPIError,
        f"RunAPI answered HTTP {status}{because}. Try again; if it persists, check "
        "RUNAPI_BASE_URL.",
        {},
    )


def model_unavailable(
    model: str, why: str, cause: RunAPIError | None = None
) -> ModelUnavailableError:
    """The error for a model RunAPI does not serve right now; `why` says how we know."""
    fields: dict[str, Any] = {}
    if cause is not None:
        fields = {
            "status": cause.status,
            "detail": cause.detail,
            "request_id": cause.request_id,
            "client_request_id": cause.client_request_id,
        }
    message = (
        f"{model} is unavailable on RunAPI right now ({why}). Choose another model, or try "
        "again later."
    )
    return ModelUnavailableError(_quoting(message, fields), model=model, **fields)


def unreadable_answer(response: httpx.Response) -> RunAPIError:
    """The error for a success status whose body is not JSON: a proxy's page, usually."""
    _, page_gist = _read_body(response)
    what = f": {page_gist}" if page_gist else ""
    context = _answer_context(response)
    return RunAPIError(
        _quoting(
            f"RunAPI answered HTTP {response.status_code} with a body that is not JSON{what}. "
            "A proxy between here and RunAPI may be failing: try again in a minute; if it "
            "persists, check RUNAPI_BASE_URL.",
            context,
        ),
        detail=page_gist,
        **context,
    )
