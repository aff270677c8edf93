"""Which provider a call goes to, and under which model name. Pure.

`provider/model` names the provider explicitly (the prefix is stripped upstream); else a
configured alias; else `default_provider`. Anything else is a 400.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.errors import BadRequest
from proxy.settings import Settings


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    upstream_model: str | None

    def rewrites(self, model: str | None) -> bool:
        return model is not None and model != self.upstream_model


class Router:
    def __init__(self, settings: Settings) -> None:
        self._providers = frozenset(settings.providers)
        self._aliases = {a.name: Route(a.provider, a.model) for a in settings.models}
        self._default = settings.default_provider

    def resolve(self, model: str | None) -> Route:
        if model is not None:
            alias = self._aliases.get(model)
            if alias is not None:
                return alias
            prefix, slash, rest = model.partition("/")
            if slash:
                if prefix not in self._providers:
                    raise BadRequest(
                        f"unknown provider {prefix!r} in model {model!r}",
                        param="model",
                        code="unknown_provider",
                    )
                return Route(prefix, rest)
        if self._default is None:
            raise BadRequest(
                f"no provider for model {model!r}: use 'provider/model', an alias, "
                "or set default_provider",
                param="model",
                code="unknown_provider",
            )
        return Route(self._default, model)
