"""The admin key: 401 in the OpenAI shape without it, before any other check; open endpoints."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.memory_recorder import MemoryRecorder
from proxy.admin.auth import AdminAuth, bearer_token
from proxy.app import AirunsApp, create_app
from proxy.errors import Unauthorized

ADMIN_ENDPOINTS = [
    ("GET", "/admin/runs"),
    ("GET", "/admin/runs/run-1"),
    ("GET", "/admin/runs/run-1/tasks"),
    ("GET", "/admin/runs/run-1/messages"),
    ("PATCH", "/admin/runs/run-1"),
    ("DELETE", "/admin/runs/run-1"),
    ("DELETE", "/admin/runs/run-1?purge=true"),
    ("POST", "/admin/runs/run-1/restore"),
    ("GET", "/admin/runs/run-1/export?format=csv"),
    ("GET", "/admin/tasks"),
    ("GET", "/admin/tasks/t1"),
    ("GET", "/admin/usage"),
    ("GET", "/admin/pricing?model=gpt-4o-mini"),
]
BAD_CREDENTIALS = [
    None,
    "Bearer wrong-key",
    "Bearer admin-key-for-tests-and-more",
    "Basic YWRtaW46YWRtaW4=",
    "admin-key-for-tests",
    "Bearer ",
]


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert set(error) == {"message", "type", "code", "param"}


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
@pytest.mark.parametrize("authorization", BAD_CREDENTIALS)
async def test_admin_endpoints_need_the_admin_key(
    client: httpx.AsyncClient, seed, method: str, path: str, authorization: str | None
) -> None:
    await seed.apply(seed.make("t1"))
    headers = {"Authorization": authorization} if authorization else {}
    if authorization is None:
        client.headers.pop("Authorization")
    response = await client.request(method, path, headers=headers, json={"name": "x"})
    assert_401(response)
    client.headers["Authorization"] = "Bearer admin-key-for-tests"
    run = (await client.get("/admin/runs/run-1")).json()
    assert (run["name"], run["status"]) == ("hello", "active")  # nothing changed


async def test_the_bearer_scheme_is_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/admin/runs", headers={"Authorization": "bearer admin-key-for-tests"}
    )
    assert response.status_code == 200


async def test_auth_is_checked_before_parameters(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/runs?limit=0", headers={"Authorization": "Bearer no"})
    assert_401(response)


async def test_an_empty_admin_key_closes_the_admin_api(engine: AsyncEngine, settings) -> None:
    from dataclasses import replace

    closed = replace(settings, admin=replace(settings.admin, api_key=""))
    app: AirunsApp = create_app(closed, engine=engine, recorder=MemoryRecorder())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for authorization in ("Bearer ", "Bearer x", None):
            headers = {"Authorization": authorization} if authorization else {}
            response = await client.get("/admin/runs", headers=headers)
            assert_401(response)
            assert "disabled" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/schema/openapi.json"])
async def test_health_metrics_and_schema_need_no_key(client: httpx.AsyncClient, path: str) -> None:
    client.headers.pop("Authorization")
    assert (await client.get(path)).status_code == 200


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("BEARER abc", "abc"),
        ("Bearer", None),
        ("Token abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_the_key_comparison_accepts_only_the_exact_key() -> None:
    auth = AdminAuth("sëcret")
    assert auth.authenticate("Bearer sëcret").is_admin
    for wrong in ("Bearer sëcre", "Bearer sëcret2", "Bearer SËCRET"):
        with pytest.raises(Unauthorized):
            auth.authenticate(wrong)
