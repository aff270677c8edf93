"""Router: `provider/model`, then an alias, then default_provider; anything else is a 400."""

from __future__ import annotations

import pytest

from proxy.errors import BadRequest
from proxy.routing import Route, Router
from proxy.settings import parse_settings

PROVIDERS = """
providers:
  openai: {base_url: "https://api.openai.com/v1"}
  mock: {base_url: "http://127.0.0.1:9000/v1"}
models:
  - {name: fast, provider: openai, model: gpt-4o-mini}
  - {name: local, provider: mock, model: gpt-4o-mini}
  - {name: mock/pinned, provider: openai, model: gpt-4o-2024-08-06}
"""


def router(default: str | None = "openai") -> Router:
    text = PROVIDERS + (f"default_provider: {default}\n" if default else "")
    return Router(parse_settings(text, {}))


@pytest.mark.parametrize(
    ("model", "route"),
    [
        pytest.param("mock/gpt-4o-mini", Route("mock", "gpt-4o-mini"), id="prefix-stripped"),
        pytest.param("openai/gpt-4o", Route("openai", "gpt-4o"), id="other-provider"),
        pytest.param(
            "openai/ft:gpt-4o-mini:org:custom:abc",
            Route("openai", "ft:gpt-4o-mini:org:custom:abc"),
            id="colons-kept",
        ),
        pytest.param(
            "mock/meta-llama/Llama-3-8b",
            Route("mock", "meta-llama/Llama-3-8b"),
            id="only-first-slash-is-the-provider",
        ),
        pytest.param("fast", Route("openai", "gpt-4o-mini"), id="alias"),
        pytest.param("local", Route("mock", "gpt-4o-mini"), id="alias-to-other-provider"),
        pytest.param(
            "mock/pinned", Route("openai", "gpt-4o-2024-08-06"), id="alias-wins-over-prefix"
        ),
        pytest.param("gpt-4o", Route("openai", "gpt-4o"), id="default-provider"),
        pytest.param(None, Route("openai", None), id="no-model-goes-to-default"),
    ],
)
def test_model_resolves_to_a_route(model: str | None, route: Route) -> None:
    assert router().resolve(model) == route


@pytest.mark.parametrize("model", ["anthropic/claude-3", "OpenAI/gpt-4o", "/gpt-4o"])
def test_unknown_provider_prefix_is_a_400_on_model(model: str) -> None:
    with pytest.raises(BadRequest) as caught:
        router().resolve(model)

    assert caught.value.status == 400
    assert caught.value.param == "model"
    assert caught.value.code == "unknown_provider"
    assert repr(model.partition("/")[0]) in caught.value.message


@pytest.mark.parametrize("model", ["gpt-4o", None])
def test_plain_model_without_default_provider_is_a_400_on_model(model: str | None) -> None:
    with pytest.raises(BadRequest) as caught:
        router(default=None).resolve(model)

    assert caught.value.param == "model"
    assert caught.value.code == "unknown_provider"


@pytest.mark.parametrize(
    ("model", "route"),
    [("mock/gpt-4o-mini", Route("mock", "gpt-4o-mini")), ("fast", Route("openai", "gpt-4o-mini"))],
)
def test_prefix_and_alias_work_without_default_provider(model: str, route: Route) -> None:
    assert router(default=None).resolve(model) == route


def test_router_with_no_providers_rejects_everything() -> None:
    empty = Router(parse_settings("", {}))

    for model in ("gpt-4o", "openai/gpt-4o", None):
        with pytest.raises(BadRequest):
            empty.resolve(model)


@pytest.mark.parametrize(
    ("model", "rewrites"),
    [
        ("mock/gpt-4o-mini", True),
        ("fast", True),
        ("gpt-4o", False),
        (None, False),
    ],
)
def test_route_rewrites_only_when_the_upstream_model_differs(
    model: str | None, rewrites: bool
) -> None:
    assert router().resolve(model).rewrites(model) is rewrites


def test_route_rewrites_compares_against_its_upstream_model() -> None:
    route = Route("openai", "gpt-4o")

    assert route.rewrites("gpt-4o") is False
    assert route.rewrites("openai/gpt-4o") is True
    assert route.rewrites(None) is False
