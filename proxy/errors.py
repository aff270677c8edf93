"""Every error airuns itself raises, in one hierarchy, rendered in the OpenAI shape.

    ProxyError (status, type, code)
    ├── BadRequest            400 invalid_request_error (bad JSON, header, parameter, provider)
    ├── Unauthorized          401 authentication_error
    ├── Forbidden             403 permission_error
    ├── NotFound              404 not_found_error
    ├── Conflict              409 conflict_error (duplicate task id)
    ├── PayloadTooLarge       413 invalid_request_error
    ├── RateLimited           429 rate_limit_error
    ├── UpstreamUnreachable   502 upstream_error
    └── UpstreamTimeout       504 timeout_error

Errors that come from an upstream provider are never wrapped: its status and body are passed
through unchanged.
"""

from __future__ import annotations

import json


class ProxyError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()  # sent with the error response

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }

    def body(self) -> bytes:
        return json.dumps(self.to_dict()).encode()


class BadRequest(ProxyError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class Unauthorized(ProxyError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class Forbidden(ProxyError):
    status, type, code = 403, "permission_error", "forbidden"


class NotFound(ProxyError):
    status, type, code = 404, "not_found_error", "not_found"


class Conflict(ProxyError):
    status, type, code = 409, "conflict_error", "conflict"
    # Sending it again cannot help; the OpenAI SDKs retry a 409 unless told not to.
    headers = ((b"x-should-retry", b"false"),)


class PayloadTooLarge(ProxyError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class RateLimited(ProxyError):
    status, type, code = 429, "rate_limit_error", "rate_limited"


class UpstreamUnreachable(ProxyError):
    status, type, code = 502, "upstream_error", "upstream_unreachable"


class UpstreamTimeout(ProxyError):
    status, type, code = 504, "timeout_error", "upstream_timeout"
