"""The image's facts the deployment tests share: where its Dockerfile and config are, the
settings a container starts with, and how long a clean stop may take.

No Docker engine runs here, so what Docker would do is checked by reading these files and by
replaying their commands on this machine."""

from __future__ import annotations

from proxy.app import writer_settings
from proxy.settings import Settings, parse_settings
from tests.deploy.checkout import REPO

DOCKERFILE = REPO / "Dockerfile"
CONTAINER_CONFIG = REPO / "deploy" / "config.yaml"
# What a stop takes beyond its two bounded phases (closing sessions and the engine, the
# interpreter's exit); tests/deploy/test_image_rehearsal.py measures a stop of the image's CMD.
STOP_MARGIN_SECONDS = 3.0


def container_settings(environ: dict[str, str] | None = None) -> Settings:
    return parse_settings(CONTAINER_CONFIG.read_text(), environ or {})


def shutdown_seconds(settings: Settings) -> float:
    """Longest a clean stop takes: calls in flight get `shutdown.grace_period`, then the writer
    stores what is queued within its `stop_timeout` (proxy/app.py `writer_settings`)."""
    return settings.shutdown.grace_period + writer_settings(settings).stop_timeout
