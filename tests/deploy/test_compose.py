"""compose.yaml read as Docker Compose would read it (no engine here): airuns starts once Postgres
is healthy, both keep their data in named volumes, and a stop gives airuns its whole shutdown."""

from __future__ import annotations

import yaml
from sqlalchemy.engine import make_url

from tests.deploy.compose import COMPOSE, duration_seconds, load_compose, variables_read
from tests.deploy.image import (
    STOP_MARGIN_SECONDS,
    container_settings,
    shutdown_seconds,
)

COMPOSED = load_compose()
SERVICES = COMPOSED["services"]


def test_airuns_and_postgres_both_report_their_health():
    postgres, airuns = SERVICES["postgres"], SERVICES["airuns"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert airuns["healthcheck"]["test"] == ["CMD", "airuns", "healthcheck"]


def test_airuns_waits_for_postgres_to_be_healthy():
    assert SERVICES["airuns"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_both_keep_their_data_in_named_volumes():
    declared = set(COMPOSED["volumes"])
    mounts = {
        name: dict(v.split(":", 1) for v in service["volumes"])
        for name, service in SERVICES.items()
    }
    assert mounts["airuns"] == {"airuns-data": "/data"}
    assert mounts["postgres"] == {"postgres-data": "/var/lib/postgresql/data"}
    assert {"airuns-data", "postgres-data"} <= declared


def test_a_stop_waits_for_calls_in_flight_and_the_flush():
    airuns = SERVICES["airuns"]
    assert airuns["stop_signal"] == "SIGTERM"
    needed = shutdown_seconds(container_settings()) + STOP_MARGIN_SECONDS
    assert duration_seconds(airuns["stop_grace_period"]) >= needed


def test_airuns_is_given_the_database_postgres_creates():
    postgres = SERVICES["postgres"]["environment"]
    url = make_url(SERVICES["airuns"]["environment"]["AIRUNS_DATABASE_URL"])
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port) == ("postgres", 5432)
    assert (url.username, url.password, url.database) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )


def test_the_password_and_keys_come_from_the_environment_never_the_file():
    secret = load_compose({"POSTGRES_PASSWORD": "s3cret", "OPENAI_API_KEY": "sk-from-env"})
    airuns = secret["services"]["airuns"]["environment"]
    assert secret["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"
    assert make_url(airuns["AIRUNS_DATABASE_URL"]).password == "s3cret"
    assert airuns["OPENAI_API_KEY"] == "sk-from-env"
    raw = yaml.safe_load(COMPOSE.read_text())["services"]["airuns"]["environment"]
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AIRUNS_ADMIN_KEY"):
        assert variables_read(raw[name]) == {name}, f"{name} is read from the environment"


def test_the_port_is_published_on_loopback_only():
    """Open mode proxies with the operator's keys: whoever reaches the port spends them."""
    assert all(p.startswith("127.0.0.1:") for p in SERVICES["airuns"]["ports"])
