"""A request body as the client sent it → where the call goes and what is sent upstream. Pure.

The body is parsed only where airuns needs to read it (its JSON endpoints, or a pass-through
call that says it is JSON), and rewritten only when it must be: an alias or a `provider/`
prefix changes `model`, and a tracked chat or text-completion stream asks the upstream for
usage (`stream_options.include_usage`) when the client did not. Otherwise the bytes go upstream
as they came. Malformed input is a `BadRequest` naming what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from persistence.record import CHAT, COMPLETIONS, JSON_ENDPOINTS
from proxy.errors import BadRequest
from proxy.jsonfast import decode_json
from proxy.routing import Router

_USAGE_ENDPOINTS = (CHAT, COMPLETIONS)


@dataclass(frozen=True, slots=True)
class Prepared:
    provider: str
    model: str | None  # as the client sent it
    upstream_model: str | None  # as sent upstream
    stream: bool
    usage_injected: bool  # airuns asked for the usage chunk: the relay drops it
    request: dict[str, Any] | None  # what is recorded of the request
    body: bytes  # what is sent upstream


def parse_body(method: str, endpoint: str, content_type: bytes | None, body: bytes) -> Any:
    """The decoded JSON body, or None when there is none airuns needs to read."""
    if not body or method in ("GET", "HEAD"):
        return None
    if endpoint not in JSON_ENDPOINTS and not _is_json(content_type):
        return None
    try:
        return decode_json(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None


def prepare(
    router: Router,
    endpoint: str,
    request: Any,
    body: bytes,
    *,
    track: bool,
    keep_request: bool,
    max_kept: int,
) -> Prepared:
    """Route the call and build the body to send; `keep_request` (capture.request_bodies)
    keeps the request for the record, without its messages beyond `max_kept` bytes."""
    model = request.get("model") if isinstance(request, dict) else None
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string", param="model")
    route = router.resolve(model)
    if not isinstance(request, dict):
        return Prepared(route.provider, model, route.upstream_model, False, False, None, body)
    stream = _stream_flag(request) if endpoint in JSON_ENDPOINTS else False
    kept = None
    if track and keep_request:
        kept = request if len(body) <= max_kept else truncated(request, len(body))
    outgoing = request
    if route.rewrites(model):
        outgoing = {**outgoing, "model": route.upstream_model}
    injected = track and stream and endpoint in _USAGE_ENDPOINTS and not _asks_usage(request)
    if injected:
        options = request.get("stream_options")
        extra = options if isinstance(options, dict) else {}
        outgoing = {**outgoing, "stream_options": {**extra, "include_usage": True}}
    if outgoing is not request:
        body = json.dumps(outgoing, ensure_ascii=False, separators=(",", ":")).encode()
    return Prepared(route.provider, model, route.upstream_model, stream, injected, kept, body)


def truncated(request: dict[str, Any], size: int) -> dict[str, Any]:
    """A stored stand-in for a request body over capture.max_body_bytes."""
    kept = {k: v for k, v in request.items() if k not in ("messages", "input", "prompt")}
    return {**kept, "_truncated": True, "_bytes": size}


def _stream_flag(request: dict[str, Any]) -> bool:
    stream = request.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", param="stream")
    return stream is True


def _asks_usage(request: dict[str, Any]) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _is_json(content_type: bytes | None) -> bool:
    return (
        content_type is not None
        and content_type.split(b";")[0].strip().lower() == b"application/json"
    )
