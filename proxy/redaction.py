"""Masking credentials out of text airuns stores or logs (an upstream's error message may echo
the key it was sent). Pure.

Masked: the configured provider keys and the call's own client credential wherever they appear,
and anything shaped like a credential: `Bearer …`/`Basic …` values, OpenAI/Anthropic-style
`sk-…` keys and the prefixed keys of other common providers. Each becomes its recognisable
prefix followed by `***`, so the message still says what kind of key was involved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_MIN_SECRET = 8  # shorter configured values are not distinctive enough to search for

_SHAPED = re.compile(
    r"(?P<scheme>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=\-]{8,}"
    r"|(?P<prefix>\b(?:sk|pk|rk)-(?:proj-|ant-|svcacct-|admin-)?)[A-Za-z0-9_\-]{6,}"
    r"|(?P<vendor>\b(?:gsk_|xai-|hf_|ghp_|gho_|glpat-|AIza|AKIA|r8_))[A-Za-z0-9_\-]{8,}",
    re.IGNORECASE,
)


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        known = {secret for secret in secrets if secret and len(secret) >= _MIN_SECRET}
        # Longest first, so a key that contains another is masked whole.
        self._secrets = sorted(known, key=len, reverse=True)

    def mask(self, text: str | None, *also: str | None) -> str | None:
        """`text` with every credential masked; `also` are this call's own secrets."""
        if not text:
            return text
        for secret in (*self._secrets, *also):
            if secret and len(secret) >= _MIN_SECRET and secret in text:
                text = text.replace(secret, MASK)
        return _SHAPED.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    return (match.group("scheme") or match.group("prefix") or match.group("vendor")) + MASK


def bearer_token(authorization: bytes | None) -> str | None:
    """The credential in an `Authorization` header value (whatever its scheme)."""
    if not authorization:
        return None
    value = authorization.decode("latin-1").strip()
    _, space, token = value.partition(" ")
    return (token.strip() if space else value) or None
