"""The path a call is forwarded to: decoded and normalised once, never sliced from raw bytes.

Pure. A client's path is percent-decoded once; what could make the upstream URL leave the
provider's base path is refused with a 400: a dot segment (`..`, `.`, `%2e%2e`), an encoded
slash or backslash (`%2F`, `%5C`), a backslash, a control character, or a path that is not
`/v1/...` after decoding. What is left is re-encoded segment by segment, so the upstream
receives one canonical spelling under the provider's base URL: its scheme, host and port come
from configuration, never from the request.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from proxy.errors import BadRequest

PREFIX = "/v1"
# Characters a path segment keeps as they are (RFC 3986 pchar minus '%'); the rest is
# percent-encoded, so the segment can never become a separator, a query or a fragment.
_SEGMENT_SAFE = "-._~!$&'()*+,;=:@"
_ENCODED_SEPARATOR = re.compile(rb"%(2f|5c)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ProxyPath:
    """`endpoint` names the call (`/v1/chat/completions`); `upstream` is what follows the
    provider's base URL (`/chat/completions?x=1`), already canonically encoded."""

    endpoint: str
    upstream: str


@functools.lru_cache(maxsize=1024)  # a handful of paths carry nearly every call
def normalize_path(raw_path: bytes, query: bytes = b"") -> ProxyPath:
    """Decode `raw_path` once and check it; raises `BadRequest` (param `path`)."""
    if _ENCODED_SEPARATOR.search(raw_path):
        raise _refused("an encoded '/' or '\\' is not allowed in the path")
    try:
        decoded = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise _refused("the path is not valid UTF-8 once decoded") from None
    if "\\" in decoded or _CONTROL.search(decoded):
        raise _refused("the path contains a backslash or a control character")
    if not decoded.startswith(PREFIX + "/"):
        raise _refused(f"the path must start with {PREFIX}/")
    segments = decoded[len(PREFIX) + 1 :].split("/")
    if any(segment in (".", "..") for segment in segments):
        raise _refused("dot segments ('.' and '..') are not allowed in the path")
    if not segments[0]:
        raise _refused(f"the path must name an endpoint after {PREFIX}/")
    rest = "/" + "/".join(quote(segment, safe=_SEGMENT_SAFE) for segment in segments)
    upstream = rest + "?" + _query(query) if query else rest
    return ProxyPath(PREFIX + "/" + "/".join(segments), upstream)


def _query(query: bytes) -> str:
    """The query string as sent, with anything that is not plainly URL-safe encoded (a '#'
    would otherwise start a fragment)."""
    return quote(query.decode("latin-1"), safe="-._~!$&'()*+,;=:@/?%")


def _refused(reason: str) -> BadRequest:
    return BadRequest(f"invalid request path: {reason}", param="path", code="invalid_path")
