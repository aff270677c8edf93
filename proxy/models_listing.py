"""`GET /v1/models`: the configured aliases plus every provider's own models.

Provider models are listed as `provider/model` (the name that routes to them); a provider that
does not answer within a few seconds is left out rather than failing the listing.

Keys go where the call goes: providers with a configured key are asked with it; the client's
own `Authorization` is sent to the default provider only (where its bare model names go),
never to every keyless provider; other keyless providers are not asked.
"""

from __future__ import annotations

import asyncio
import json

from proxy.errors import ProxyError
from proxy.settings import Settings
from proxy.upstream import UpstreamPool

_LIST_TIMEOUT = 5.0
_MAX_LISTING = 8 * 1024 * 1024  # bytes of one provider's model list


async def list_models(
    settings: Settings, pool: UpstreamPool, client_authorization: str | None = None
) -> dict:
    data = [
        {"id": alias.name, "object": "model", "created": 0, "owned_by": alias.provider}
        for alias in settings.models
    ]
    asked = {
        name: f"Bearer {provider.api_key}" if provider.api_key else client_authorization
        for name, provider in pool.providers.items()
        if provider.api_key or name == settings.default_provider
    }
    results = await asyncio.gather(
        *(_provider_models(pool, name, authorization) for name, authorization in asked.items())
    )
    for models in results:
        data.extend(models)
    return {"object": "list", "data": data}


async def _provider_models(
    pool: UpstreamPool, provider: str, authorization: str | None
) -> list[dict]:
    headers = {"authorization": authorization} if authorization else {}
    try:
        async with asyncio.timeout(_LIST_TIMEOUT):
            response = await pool.send(provider, "GET", "/models", headers, None, stream=False)
            try:
                payload = await response.read(_MAX_LISTING)
            finally:
                response.release()
    except (ProxyError, TimeoutError):
        return []
    if response.status != 200:
        return []
    try:
        models = json.loads(payload).get("data") or []
    except (ValueError, AttributeError):
        return []
    return [
        {**m, "id": f"{provider}/{m['id']}", "owned_by": m.get("owned_by", provider)}
        for m in models
        if isinstance(m, dict) and isinstance(m.get("id"), str)
    ]
