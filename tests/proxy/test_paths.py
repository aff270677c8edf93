"""normalize_path: the upstream URL is always the provider's base URL plus a checked path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from proxy.errors import BadRequest
from proxy.paths import normalize_path

BASES = ["http://127.0.0.1:9000/v1", "http://127.0.0.1:9000", "https://h.example/openai/v1"]


@pytest.mark.parametrize(
    "raw, query, endpoint, upstream",
    [
        (b"/v1/chat/completions", b"", "/v1/chat/completions", "/chat/completions"),
        (b"/%76%31/chat/completions", b"", "/v1/chat/completions", "/chat/completions"),
        (b"/v1/files/abc", b"purpose=x", "/v1/files/abc", "/files/abc?purpose=x"),
        (b"/v1/files/a%3Fb", b"", "/v1/files/a?b", "/files/a%3Fb"),
        (b"/v1/files/a%20b%25c", b"", "/v1/files/a b%c", "/files/a%20b%25c"),
        (b"/v1/files/caf%C3%A9", b"", "/v1/files/caf\u00e9", "/files/caf%C3%A9"),
        (b"/v1/files/a#b", b"", "/v1/files/a#b", "/files/a%23b"),
        (b"/v1/files/", b"", "/v1/files/", "/files/"),
        (b"/v1/x", b"a=%zz&b=#c", "/v1/x", "/x?a=%zz&b=%23c"),
    ],
)
def test_paths_are_decoded_once_and_reencoded_canonically(raw, query, endpoint, upstream):
    path = normalize_path(raw, query)
    assert (path.endpoint, path.upstream) == (endpoint, upstream)


@pytest.mark.parametrize(
    "raw",
    [
        b"/v%31%2F@127.0.0.1:9999/v1/chat/completions",  # the host-changing path of the report
        b"/v1/../admin/runs",
        b"/v1/../../../../etc/passwd",
        b"/v1/%2e%2e/admin/runs",
        b"/v1/%2E%2E/%2e%2e/etc/passwd",
        b"/v1/chat/./completions",
        b"/v1/chat/%2e/completions",
        b"/v1/files/a%2Fb",
        b"/v1/files/a%2fb",
        b"/v1/files/a%5Cb",
        b"/v1/files/a\\b",
        b"/v1/files/a%00b",
        b"/v1/files/%0d%0aHost:%20evil",
        b"/v2/chat/completions",
        b"/v1",
        b"/v1/",
        b"/%76%32/chat",
        b"/v1/files/%ff%fe",  # not UTF-8 once decoded
        b"//v1/chat/completions",
    ],
)
def test_paths_that_could_leave_the_base_path_are_a_400(raw):
    with pytest.raises(BadRequest) as refused:
        normalize_path(raw)
    assert refused.value.param == "path" and refused.value.status == 400


_PATH_BYTES = st.lists(
    st.sampled_from(
        [
            b"/",
            b"v1",
            b"v",
            b"1",
            b".",
            b"..",
            b"%2e",
            b"%2E",
            b"%2f",
            b"%2F",
            b"%5c",
            b"%76",
            b"%31",
            b"@",
            b":",
            b"127.0.0.1",
            b"%40",
            b"?",
            b"#",
            b"%00",
            b"\\",
            b"a",
            b"%",
            b"%zz",
            b"chat",
            b"completions",
            b"%ff",
            b"~",
            b"%3A",
            b"http:",
            b"//",
        ]
    ),  # fmt: skip
    max_size=12,
).map(b"".join)


@given(raw=st.one_of(_PATH_BYTES, st.binary(max_size=40)), query=st.binary(max_size=20))
def test_any_request_path_reaches_the_configured_host_under_its_base_path_or_is_a_400(raw, query):
    try:
        path = normalize_path(b"/v1/" + raw, query)
    except BadRequest as refused:
        assert refused.status == 400
        return
    for base in BASES:
        configured = URL(base)
        url = URL(base + path.upstream, encoded=True)
        assert url.scheme == configured.scheme
        assert (url.host, url.port) == (configured.host, configured.port)
        assert url.raw_path.startswith(configured.raw_path.rstrip("/") + "/")
        assert "/../" not in url.path + "/" and "/./" not in url.path + "/"
        assert not url.fragment
