"""The admin API as one litestar `Router` under `/admin`: its routes, the auth guard and the
dependencies handlers receive (`engine`, `principal`, `prices`)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from sqlalchemy.ext.asyncio import AsyncEngine

from pricing.table import PriceTable
from proxy.admin.auth import AdminAuth, principal_of
from proxy.admin.params import reject_unknown_query_parameters
from proxy.admin.report_routes import REPORT_ROUTES
from proxy.admin.run_routes import RUN_ROUTES
from proxy.settings import Settings

SECURITY_SCHEME = "adminKey"


def admin_router(settings: Settings) -> Router:
    auth = AdminAuth(settings.admin.api_key)
    prices = PriceTable(settings.pricing.overrides, price_as=settings.price_as())
    return Router(
        path="/admin",
        route_handlers=[*RUN_ROUTES, *REPORT_ROUTES],
        guards=[auth.guard, reject_unknown_query_parameters],  # in this order: key first
        dependencies={
            "engine": Provide(engine_of, sync_to_thread=False),
            "principal": Provide(principal_of, sync_to_thread=False),
            "prices": Provide(lambda: prices, sync_to_thread=False, use_cache=True),
        },
        security=[{SECURITY_SCHEME: []}],
        tags=["admin"],
    )


def engine_of(request: Request[Any, Any, Any]) -> AsyncEngine:
    return request.app.state.airuns.engine


def openapi_config() -> OpenAPIConfig:
    """Served at `/schema` (no key needed); documents the admin key as a bearer token."""
    bearer = SecurityScheme(type="http", scheme="bearer", description="admin.api_key")
    return OpenAPIConfig(
        title="airuns",
        version="1",
        components=Components(security_schemes={SECURITY_SCHEME: bearer}),
    )
