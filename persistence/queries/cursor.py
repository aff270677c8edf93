"""Opaque pagination cursors: which list they belong to, and the last row's sort key.

A cursor is base64url (no padding) of the JSON `[kind, key]`. `kind` names the list and its
order (e.g. `runs:cost`), so a cursor made for one sort is refused by another instead of
silently paging through the wrong order. Pure.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

MAX_CURSOR_LENGTH = 2048


class CursorError(ValueError):
    """The cursor is malformed, or was made for another list or sort."""


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    raw = json.dumps([kind, list(key)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(token: str, kind: str) -> list[Any]:
    """The key stored in `token`; raises `CursorError` unless it was made for `kind`."""
    if not token or len(token) > MAX_CURSOR_LENGTH:
        raise CursorError("cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CursorError("cursor is not a valid pagination cursor") from None
    if not (isinstance(decoded, list) and len(decoded) == 2 and isinstance(decoded[1], list)):
        raise CursorError("cursor is not a valid pagination cursor")
    if decoded[0] != kind:
        raise CursorError(f"cursor belongs to another listing ({decoded[0]!r}, not {kind!r})")
    return decoded[1]
