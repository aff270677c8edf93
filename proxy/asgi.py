"""The ASGI entry point the server workers import: settings from the environment, once."""

from __future__ import annotations

import gc
import os

from proxy.app import AirunsApp, create_app
from proxy.observability import configure_process_logging
from proxy.settings import load_settings


def create_from_environment() -> AirunsApp:
    """Factory for `uvicorn --factory`; `airuns serve` puts the config path in AIRUNS_CONFIG.

    Process logging (stdlib records too) is configured after `create_app`, so it replaces the
    handlers litestar installs there; a `--workers` process starts here."""
    settings = load_settings(None, os.environ)
    app = create_app(settings)
    configure_process_logging(settings.logging.level, settings.logging.format)
    tune_gc()
    return app


def tune_gc() -> None:
    """Move the ~150k long-lived objects loaded at start (price data, SQLAlchemy, litestar) out
    of the collector's reach, and collect the young generation less often: full collections
    that traversed them took ~10% of the CPU under load and ~80 ms pauses (docs/performance.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
