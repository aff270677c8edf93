"""Exception handlers: every error of the litestar side of the app in the OpenAI shape.

- `ProxyError` (ours) renders itself, `param` included.
- Litestar's `ValidationException` (a query parameter or body field of the wrong type, out of
  range, not one of the choices; an unknown PATCH field) names the offending parameter.
- A body that is not JSON → 400 with `param: "body"`, one over the endpoint's size limit → 413
  with `param: "body"`; 404/405 and other HTTP errors map to the error type of their status;
  anything else is a 500 that is logged, never leaked.

`error_responses()` documents those bodies in the OpenAPI schema, replacing litestar's own
validation-error shape there.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.openapi import ResponseSpec

from persistence.queries.bounds import NUL_FREE_PATTERN
from proxy.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ProxyError,
    RateLimited,
    Unauthorized,
)

_BY_STATUS: dict[int, type[ProxyError]] = {
    error.status: error
    for error in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge)
} | {RateLimited.status: RateLimited}
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_MISSING = re.compile(r"Missing required \w+ parameter '([^']+)'")
_NUL_FOUND = f"matching regex {NUL_FREE_PATTERN!r}"  # how msgspec words a NUL_FREE_PATTERN miss


_ERROR_DESCRIPTIONS = {
    400: "A query parameter or the body is invalid; `param` names it.",
    401: "No admin key, or a wrong one.",
    404: "No such run, task or price (or not visible to this key).",
    413: "The request body is larger than this endpoint takes.",
}


class MethodNotAllowed(ProxyError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(msgspec.Struct):
    """The OpenAI error shape every admin error is rendered in."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI declarations of the errors a handler answers: 400 and 401 always, plus
    `statuses` (e.g. 404 where an id is looked up)."""
    return {
        status: ResponseSpec(
            ErrorBody, description=_ERROR_DESCRIPTIONS[status], generate_examples=False
        )
        for status in (400, 401, *statuses)
    }


def exception_handlers() -> dict[type[Exception], Any]:
    return {
        ProxyError: render_proxy_error,
        HTTPException: render_http_error,
        Exception: render_crash,
    }


def render_proxy_error(_: Request[Any, Any, Any], exc: ProxyError) -> Response[Any]:
    return Response(exc.to_dict(), status_code=exc.status)


def render_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return render_proxy_error(request, as_proxy_error(exc))


def render_crash(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log = getattr(getattr(request.app.state, "airuns", None), "log", None)
    if log is not None:
        log.error("admin_request_failed", path=request.url.path, error=repr(exc))
    return render_proxy_error(request, ProxyError("internal server error"))


def as_proxy_error(exc: HTTPException) -> ProxyError:
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        return _validation_error(exc.extra[0])
    if isinstance(exc, ValidationException) and (missing := _MISSING.match(exc.detail)):
        return BadRequest(
            f"missing required parameter {missing.group(1)!r}", param=missing.group(1)
        )
    if isinstance(exc.__cause__, SerializationException):
        return BadRequest(f"request body is not valid JSON: {exc.detail}", param="body")
    if exc.status_code == PayloadTooLarge.status:
        return PayloadTooLarge(f"request body is too large: {exc.detail}", param="body")
    if exc.status_code == MethodNotAllowed.status:
        return MethodNotAllowed(exc.detail)
    error = _BY_STATUS.get(exc.status_code)
    if error is None:
        generic = ProxyError(exc.detail)
        generic.status = exc.status_code
        return generic
    return error(exc.detail)


def _validation_error(problem: Any) -> BadRequest:
    """One of litestar's validation problems: `{"message", "key", "source"}`."""
    problem = problem if isinstance(problem, dict) else {}
    message = str(problem.get("message") or "invalid value")
    if _NUL_FOUND in message:
        message = "must not contain NUL characters (the database cannot store them)"
    key = str(problem.get("key") or "")
    source = str(getattr(problem.get("source"), "value", problem.get("source")) or "")
    if unknown := _UNKNOWN_FIELD.search(message):
        return BadRequest(f"unknown field {unknown.group(1)!r}", param=unknown.group(1))
    if key == "data":  # the body as a whole (e.g. an array instead of an object)
        return BadRequest(f"invalid request body: {message}", param="body")
    field = re.split(r"[.\[]", key, maxsplit=1)[0] or None
    where = {"query": "query parameter", "path": "path parameter"}.get(source, "field")
    return BadRequest(f"invalid {where} {key!r}: {message}", param=field)
