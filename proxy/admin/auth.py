"""Who is calling the admin API: `Authorization: Bearer <key>` → a `Principal`, or 401.

The admin key is compared in constant time (`hmac.compare_digest`), so response timing does not
reveal how much of a guess was right. An empty `admin.api_key` closes the admin API: every
request gets 401, rather than an unauthenticated API being open by accident.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection

from persistence.queries.scope import Principal
from proxy.errors import Unauthorized

_STATE_KEY = "airuns_principal"


class AdminAuth:
    """Resolves credentials to a principal. (User keys of `auth.mode: keys` plug in here.)"""

    def __init__(self, admin_key: str) -> None:
        self._admin_key = admin_key.encode()

    def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if not self._admin_key:
            raise Unauthorized("the admin API is disabled: set admin.api_key to enable it")
        if token is None:
            raise Unauthorized("missing admin API key: send Authorization: Bearer <key>")
        if not hmac.compare_digest(token.encode(), self._admin_key):
            raise Unauthorized("invalid admin API key")
        return Principal.admin()

    async def guard(self, connection: ASGIConnection[Any, Any, Any, Any], _: Any) -> None:
        """Litestar guard: runs before parameters are parsed, so a caller without a key learns
        nothing from validation errors."""
        principal = self.authenticate(connection.headers.get("authorization"))
        connection.scope.setdefault("state", {})[_STATE_KEY] = principal


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    """The principal the guard resolved for this request (a litestar dependency)."""
    return request.scope["state"][_STATE_KEY]
