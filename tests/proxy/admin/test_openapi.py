"""The OpenAPI schema (litestar's `/schema`) documents every admin endpoint and parameter."""

import httpx
import pytest

EXPECTED_PARAMETERS = {
    ("get", "/admin/runs"): {
        "limit", "cursor", "status", "starred", "q", "source_type", "user_id", "model",
        "since", "until", "sort",
    },
    ("get", "/admin/runs/{run_id}"): {"run_id"},
    ("get", "/admin/runs/{run_id}/tasks"): {"run_id", "limit", "cursor"},
    ("get", "/admin/runs/{run_id}/messages"): {"run_id"},
    ("patch", "/admin/runs/{run_id}"): {"run_id"},
    ("delete", "/admin/runs/{run_id}"): {"run_id", "purge"},
    ("post", "/admin/runs/{run_id}/restore"): {"run_id"},
    ("get", "/admin/runs/{run_id}/export"): {"run_id", "format"},
    ("get", "/admin/tasks"): {"run_id", "status", "model", "since", "until", "limit", "cursor"},
    ("get", "/admin/tasks/{task_id}"): {"task_id"},
    ("get", "/admin/usage"): {"group_by", "since", "until"},
    ("get", "/admin/pricing"): {"model", "provider"},
}  # fmt: skip


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict:
    client.headers.pop("Authorization")
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(("method", "path"), list(EXPECTED_PARAMETERS))
async def test_admin_endpoints_are_documented_with_their_parameters(
    schema: dict, method: str, path: str
) -> None:
    operation = schema["paths"][path][method]
    names = {p["name"] for p in operation.get("parameters", [])}
    assert names == EXPECTED_PARAMETERS[(method, path)]


async def test_enumerations_and_ranges_are_in_the_schema(schema: dict) -> None:
    parameters = {
        p["name"]: p["schema"] for p in schema["paths"]["/admin/runs"]["get"]["parameters"]
    }
    assert parameters["limit"]["minimum"] == 1 and parameters["limit"]["maximum"] == 200
    assert parameters["limit"]["default"] == 20
    assert parameters["sort"]["enum"] == ["recent", "oldest", "name", "cost", "tokens", "messages"]
    assert parameters["status"]["enum"] == ["active", "archived", "deleted", "all"]


async def test_the_patch_body_and_the_bearer_scheme_are_documented(schema: dict) -> None:
    patch = schema["paths"]["/admin/runs/{run_id}"]["patch"]
    assert "requestBody" in patch
    assert schema["components"]["securitySchemes"]["adminKey"]["scheme"] == "bearer"
    assert patch["security"] == [{"adminKey": []}]


async def test_the_schema_says_what_the_database_cannot_hold(schema: dict) -> None:
    """NUL-free text, id lengths and the PATCH caps are on the types, so the schema has them."""
    nul_free = "^[^\\x00]*$"
    runs = {p["name"]: p["schema"] for p in schema["paths"]["/admin/runs"]["get"]["parameters"]}
    for name in ("q", "source_type", "user_id", "model"):
        assert runs[name]["pattern"] == nul_free
    run_id = schema["paths"]["/admin/runs/{run_id}"]["get"]["parameters"][0]["schema"]
    assert (run_id["pattern"], run_id["maxLength"]) == (nul_free, 128)
    patch = schema["components"]["schemas"]["RunPatch"]["properties"]
    assert (patch["name"]["maxLength"], patch["name"]["pattern"]) == (1000, nul_free)
    assert (patch["description"]["maxLength"], patch["description"]["pattern"]) == (
        10_000,
        nul_free,
    )
    tags = patch["tags"]
    assert tags["maxItems"] == 100
    assert tags["oneOf"][0]["items"] == {"type": "string", "maxLength": 200, "pattern": nul_free}
    assert "20 levels" in str(patch["metadata"])
    responses = schema["paths"]["/admin/runs/{run_id}"]["patch"]["responses"]
    assert "413" in responses
