"""Request headers: airuns' tracking headers, and what is forwarded each way.

Pure. Tracking headers are validated here (SPEC "Request headers"); an empty or malformed
value is a 400 that names the header. Credentials are never part of an error message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from proxy.errors import BadRequest

_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_MAX_LABEL = 512
MAX_METADATA_BYTES = 16 * 1024

TRACKING_HEADERS = frozenset(
    {
        b"x-run-id",
        b"x-run-name",
        b"x-run-source-type",
        b"x-run-source-id",
        b"x-run-metadata",
        b"x-task-id",
        b"x-task-name",
        b"x-user-id",
        b"x-run-track",
    }
)
# Never forwarded upstream: hop-by-hop, recomputed, or airuns' own.
_NOT_FORWARDED = TRACKING_HEADERS | {
    b"host",
    b"content-length",
    b"connection",
    b"keep-alive",
    b"proxy-authorization",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"accept-encoding",
}
_NOT_RETURNED = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "server",
        "date",
        "trailer",
        "upgrade",
    }
)


@dataclass(frozen=True, slots=True)
class Tracking:
    run_id: str | None = None
    run_name: str | None = None
    source_type: str | None = None
    source_id: str | None = None
    run_metadata: dict[str, Any] | None = None
    task_id: str | None = None
    task_name: str | None = None
    user_id: str | None = None
    track: bool = True


def collect_tracking(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The tracking headers of a request; one sent twice is a 400 (which would win is a
    guess the client should not have to make)."""
    tracked: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in TRACKING_HEADERS:
            if name in tracked:
                title = _title(name)
                raise BadRequest(f"{title} must be sent at most once", param=title)
            tracked[name] = value
    return tracked


def parse_tracking(values: dict[bytes, bytes]) -> Tracking:
    """Validate the tracking headers found in a request (lower-case names → raw values)."""
    if not values:
        return Tracking()
    text = {name: _text(name, raw) for name, raw in values.items()}
    track = text.get(b"x-run-track")
    if track is not None and track.lower() not in ("on", "off"):
        raise BadRequest("X-Run-Track must be 'on' or 'off'", param="X-Run-Track")
    return Tracking(
        run_id=_identifier(text, b"x-run-id", "X-Run-Id"),
        run_name=_label(text, b"x-run-name", "X-Run-Name"),
        source_type=_label(text, b"x-run-source-type", "X-Run-Source-Type"),
        source_id=_label(text, b"x-run-source-id", "X-Run-Source-Id"),
        run_metadata=_metadata(text.get(b"x-run-metadata")),
        task_id=_identifier(text, b"x-task-id", "X-Task-Id"),
        task_name=_label(text, b"x-task-name", "X-Task-Name"),
        user_id=_label(text, b"x-user-id", "X-User-Id"),
        track=track is None or track.lower() == "on",
    )


def _text(name: bytes, raw: bytes) -> str:
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        title = _title(name)
        raise BadRequest(f"{title} is not valid UTF-8", param=title) from None
    if not value:
        title = _title(name)
        raise BadRequest(f"{title} must not be empty", param=title)
    return value


def _title(name: bytes) -> str:
    return "-".join(part.capitalize() for part in name.decode().split("-"))


def _identifier(text: dict[bytes, str], key: bytes, title: str) -> str | None:
    value = text.get(key)
    if value is not None and not _ID.fullmatch(value):
        raise BadRequest(
            f"{title} must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'",
            param=title,
        )
    return value


def _label(text: dict[bytes, str], key: bytes, title: str) -> str | None:
    value = text.get(key)
    if value is not None and len(value) > _MAX_LABEL:
        raise BadRequest(f"{title} must be at most {_MAX_LABEL} characters", param=title)
    return value


def _metadata(value: str | None) -> dict[str, Any] | None:
    """Strict JSON (no NaN or Infinity, which neither database's JSON type holds)."""
    if value is None:
        return None
    if len(value.encode()) > MAX_METADATA_BYTES:
        raise BadRequest(
            f"X-Run-Metadata must be at most {MAX_METADATA_BYTES} bytes", param="X-Run-Metadata"
        )
    try:
        parsed = json.loads(value, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise BadRequest(
            "X-Run-Metadata must be a strict JSON object", param="X-Run-Metadata"
        ) from None
    if not isinstance(parsed, dict):
        raise BadRequest("X-Run-Metadata must be a JSON object", param="X-Run-Metadata")
    return parsed


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def forwarded_headers(headers: list[tuple[bytes, bytes]], api_key: str | None) -> dict[str, str]:
    """Client headers to send upstream; the provider's key, when configured, replaces the
    client's Authorization (else the client's own key is forwarded: bring your own key)."""
    out: dict[str, str] = {}
    for name, value in headers:
        if name in _NOT_FORWARDED or (api_key and name == b"authorization"):
            continue
        out[name.decode("latin-1")] = value.decode("latin-1")
    if api_key:
        out["authorization"] = f"Bearer {api_key}"
    # Bodies are relayed and parsed as they are: ask for them uncompressed (the upstream
    # client still decodes one that comes compressed anyway).
    out["accept-encoding"] = "identity"
    return out


def returned_headers(upstream: Any) -> list[tuple[bytes, bytes]]:
    """Upstream response headers to pass to the client: hop-by-hop ones, length and encoding
    dropped (the body is relayed decoded; the relay adds a length when it knows it)."""
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in upstream.items()
        if name.lower() not in _NOT_RETURNED
    ]
