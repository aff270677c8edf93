"""The image's config (deploy/config.yaml) parses with the environment the image, compose.yaml and
the README give it, and names no mock: in a container there is no fake provider to reach, so a
call that went to one would be a 502."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

import pytest
import yaml

from proxy.settings import SettingsError
from tests.deploy import readme
from tests.deploy.compose import load_compose, variables_read
from tests.deploy.dockerfile import env_of, read_instructions, split_stages
from tests.deploy.image import CONTAINER_CONFIG, DOCKERFILE, container_settings


def image_environment() -> dict[str, str]:
    """What a container starts with: the image's `ENV`, then compose's `environment`."""
    image = env_of(split_stages(read_instructions(DOCKERFILE))[-1])
    compose = load_compose()["services"]["airuns"]["environment"]
    return {**image, **{k: str(v) for k, v in compose.items()}}


def variables_the_config_reads() -> set[str]:
    """The `${VAR}`s in the config's values (a commented-out provider reads nothing)."""
    return variables_read(yaml.safe_load(CONTAINER_CONFIG.read_text()))


def test_the_defaults_route_to_a_real_provider_with_data_under_the_volume():
    settings = container_settings()
    assert settings.default_provider == "openai"
    assert settings.database.url == "sqlite+aiosqlite:////data/airuns.db"
    assert settings.recording.spool_dir.startswith("/data/")
    assert settings.server.host == "0.0.0.0"  # reachable through a published port


def test_no_provider_is_a_mock_or_on_the_containers_own_loopback():
    for name, provider in container_settings().providers.items():
        host = urlsplit(provider.base_url).hostname or ""
        assert "mock" not in name and "mock" not in host, name
        assert host != "localhost" and not _is_loopback(host), f"{name}: {provider.base_url}"
        assert provider.base_url.startswith("https://"), f"{name}: keys travel in the clear"


@pytest.mark.parametrize("provider", sorted(container_settings().providers))
def test_the_default_provider_comes_from_the_environment(provider):
    settings = container_settings({"AIRUNS_DEFAULT_PROVIDER": provider})
    assert settings.default_provider == provider


def test_a_default_provider_that_is_not_configured_stops_the_start():
    with pytest.raises(SettingsError, match="default_provider"):
        container_settings({"AIRUNS_DEFAULT_PROVIDER": "mock"})


def test_provider_keys_and_the_admin_key_come_from_the_environment():
    keys = {"OPENAI_API_KEY": "sk-openai-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
    settings = container_settings({**keys, "AIRUNS_ADMIN_KEY": "admin-test"})
    assert settings.providers["openai"].api_key == "sk-openai-test"
    assert settings.providers["anthropic"].api_key == "sk-ant-test"
    assert settings.admin.api_key == "admin-test"
    unset = container_settings()
    assert {p.api_key for p in unset.providers.values()} == {""}  # the client's key is forwarded
    assert unset.admin.api_key == ""  # the admin API stays closed


def test_the_image_and_compose_environment_parse_to_postgres_and_a_real_default():
    environment = image_environment()
    assert environment["AIRUNS_CONFIG"] == "/etc/airuns/config.yaml"
    settings = container_settings(environment)
    assert settings.database.url.startswith("postgresql+asyncpg://")
    assert settings.default_provider in settings.providers


def test_every_variable_the_config_reads_is_documented_and_passed_by_compose():
    documented = readme.section("Run in Docker")
    passed = set(load_compose()["services"]["airuns"]["environment"])
    reads = variables_the_config_reads()
    assert {"AIRUNS_DEFAULT_PROVIDER", "OPENAI_API_KEY", "AIRUNS_DATABASE_URL"} <= reads
    for name in reads:
        assert f"`{name}`" in documented, f"README 'Run in Docker' does not document {name}"
        assert name in passed, f"compose.yaml does not pass {name} to airuns"


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
