"""Every failure on the litestar side comes out in the OpenAI error shape."""

import pytest
from litestar import Litestar, get
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    ValidationException,
)
from litestar.testing import TestClient

from persistence.queries.bounds import NUL_FREE_PATTERN
from proxy.admin.errors import as_proxy_error, exception_handlers


def invalid(message: str, key: str, source: str = "query") -> ValidationException:
    return ValidationException(extra=[{"message": message, "key": key, "source": source}])


@pytest.mark.parametrize(
    ("exc", "status", "kind", "param"),
    [
        (invalid("Expected `int`", "limit"), 400, "invalid_request_error", "limit"),
        (invalid("Expected `str`", "tags[0]", "body"), 400, "invalid_request_error", "tags"),
        (invalid("Object contains unknown field `x`", "data"), 400, "invalid_request_error", "x"),
        (invalid("Expected `object`", "data", "body"), 400, "invalid_request_error", "body"),
        (ValidationException("Missing required query parameter 'model' for path /p"),
         400, "invalid_request_error", "model"),
        (NotAuthorizedException(), 401, "authentication_error", None),
        (HTTPException(status_code=413, detail="too big"), 413, "invalid_request_error", "body"),
        (HTTPException(status_code=418, detail="teapot"), 418, "server_error", None),
    ],
)  # fmt: skip
def test_litestar_errors_map_to_ours(exc, status: int, kind: str, param: str | None) -> None:
    error = as_proxy_error(exc)
    assert (error.status, error.type, error.param) == (status, kind, param)


@pytest.mark.parametrize(
    ("key", "source"), [("q", "query"), ("run_id", "path"), ("tags[0]", "body")]
)
def test_unstorable_text_is_explained_not_shown_as_a_regex(key: str, source: str) -> None:
    message = f"Expected `str` matching regex {NUL_FREE_PATTERN!r}"
    error = as_proxy_error(invalid(message, key, source))
    assert error.param == key.split("[")[0]
    assert "NUL" in error.message and "regex" not in error.message


def test_a_crash_is_a_500_without_details() -> None:
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret internals")

    @get("/client", sync_to_thread=False)
    def client_error() -> None:
        raise ClientException("nope")

    app = Litestar([boom, client_error], exception_handlers=exception_handlers())
    with TestClient(app) as client:
        response = client.get("/boom")
        assert response.status_code == 500
        assert response.json() == {
            "error": {
                "message": "internal server error",
                "type": "server_error",
                "code": None,
                "param": None,
            }
        }
        assert client.get("/client").json()["error"]["type"] == "invalid_request_error"
