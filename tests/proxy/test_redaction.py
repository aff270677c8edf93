"""Credentials are masked out of text before it is stored or logged."""

from __future__ import annotations

import pytest

from proxy.redaction import Redactor, bearer_token

REDACTOR = Redactor(["my-azure-key-123456", "short", None, ""])


@pytest.mark.parametrize(
    "text, masked",
    [
        ("wrong key: sk-proj-abcdefghijkl.", "wrong key: sk-proj-***."),
        ("sk-ant-api03-xyzxyzxyz is invalid", "sk-ant-*** is invalid"),
        ("auth Bearer abc.def-ghi_jkl failed", "auth Bearer *** failed"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"),
        ("key my-azure-key-123456 was rejected", "key *** was rejected"),
        ("google AIzaSyD-abcdefghijklmnop", "google AIza***"),
        ("gsk_abcdefghijkl and xai-abcdefghijkl", "gsk_*** and xai-***"),
        ("basic auth failed", "basic auth failed"),  # plain words stay
        ("task-123 desk-top skill", "task-123 desk-top skill"),
        ("the short key", "the short key"),  # too short to search for without false hits
        ("", ""),
        (None, None),
    ],
)  # fmt: skip
def test_configured_keys_and_credential_shaped_text_are_masked(text, masked):
    assert REDACTOR.mask(text) == masked


def test_the_calls_own_credential_is_masked_too():
    assert Redactor().mask("bad key: client-plain-secret-9", "client-plain-secret-9") == (
        "bad key: ***"
    )


@pytest.mark.parametrize(
    "header, token",
    [(b"Bearer sk-abc", "sk-abc"), (b"sk-raw", "sk-raw"), (b"Basic  xyz ", "xyz"), (b"", None),
     (None, None)],
)  # fmt: skip
def test_the_credential_is_read_from_any_authorization_scheme(header, token):
    assert bearer_token(header) == token
