"""The ASGI entry point the server workers import: settings from the environment, once."""

from __future__ import annotations

import os

from proxy.app import AirunsApp, create_app
from proxy.settings import load_settings


def create_from_environment() -> AirunsApp:
    """Factory for `uvicorn --factory`; `airuns serve` puts the config path in AIRUNS_CONFIG."""
    return create_app(load_settings(None, os.environ))
