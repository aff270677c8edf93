"""parse_settings: YAML + environment → validated settings; errors name the key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pricing.price import Price
from proxy.cli import main as cli_main
from proxy.settings import (
    ModelAlias,
    Settings,
    SettingsError,
    Timeouts,
    interpolate,
    load_settings,
    parse_settings,
)

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"

BASE = """
server: {host: 0.0.0.0, port: 8080}
database: {url: "sqlite+aiosqlite:///./airuns.db"}
providers:
  openai: {base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY:-}"}
  mock: {base_url: "http://127.0.0.1:9000/v1"}
models:
  - {name: fast, provider: openai, model: gpt-4o-mini}
default_provider: openai
"""


def fails(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, environ or {})
    return str(caught.value)


# -- shape and defaults -------------------------------------------------------------------------


def test_empty_config_gives_defaults() -> None:
    assert parse_settings("", {}) == Settings()


def test_config_sections_become_typed_settings() -> None:
    settings = parse_settings(BASE, {})

    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 8080
    assert set(settings.providers) == {"openai", "mock"}
    assert settings.providers["mock"].base_url == "http://127.0.0.1:9000/v1"
    assert settings.providers["mock"].api_key == ""
    assert settings.models == [ModelAlias("fast", "openai", "gpt-4o-mini")]
    assert settings.default_provider == "openai"


def test_settings_are_frozen() -> None:
    settings = parse_settings(BASE, {})

    with pytest.raises(AttributeError):
        settings.server.port = 1  # type: ignore[misc]


# -- interpolation ------------------------------------------------------------------------------


def test_variable_is_interpolated_from_the_environment() -> None:
    settings = parse_settings(BASE, {"OPENAI_API_KEY": "sk-env"})

    assert settings.providers["openai"].api_key == "sk-env"


def test_default_is_used_when_the_variable_is_unset() -> None:
    text = 'database: {url: "${DB_URL:-sqlite+aiosqlite:///./other.db}"}'

    assert parse_settings(text, {}).database.url == "sqlite+aiosqlite:///./other.db"
    assert parse_settings(text, {"DB_URL": "postgresql+asyncpg://u@h/db"}).database.url == (
        "postgresql+asyncpg://u@h/db"
    )


def test_empty_default_gives_an_empty_quoted_string() -> None:
    assert parse_settings(BASE, {}).providers["openai"].api_key == ""


def test_set_but_empty_variable_wins_over_the_default() -> None:
    assert interpolate("${X:-fallback}", {"X": ""}) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "1"),
        ("x${A}y${B}z", "x1y2z"),
        ("${MISSING:-d}", "d"),
        ("${MISSING:-}", ""),
        ("${MISSING:-a:b/c}", "a:b/c"),
        ("$A and {A}", "$A and {A}"),
    ],
)
def test_interpolate_expands_variables_and_defaults(text: str, expected: str) -> None:
    assert interpolate(text, {"A": "1", "B": "2"}) == expected


def test_missing_variable_without_default_fails_naming_it() -> None:
    message = fails("server: {host: '${AIRUNS_TEST_HOST}'}")

    assert "AIRUNS_TEST_HOST" in message


def test_variable_in_a_comment_is_not_required() -> None:
    parse_settings("# api_key: ${UNSET_IN_COMMENT}\nserver: {port: 8080}\n", {})


@pytest.mark.parametrize(
    "text",
    [
        "providers:\n  mock:\n    base_url: http://127.0.0.1:9000/v1\n    api_key: ${KEY:-}\n",
        "providers:\n  mock:\n    base_url: http://127.0.0.1:9000/v1\n    api_key:\n",
        "providers:\n  mock: {base_url: 'http://127.0.0.1:9000/v1', api_key: null}\n",
    ],
    ids=["unquoted-empty-default", "empty-value", "null"],
)
def test_empty_string_value_is_not_the_string_none(text: str) -> None:
    assert parse_settings(text, {}).providers["mock"].api_key in ("", None)


def test_empty_admin_api_key_is_not_the_string_none() -> None:
    assert parse_settings("admin:\n  api_key:\n", {}).admin.api_key in ("", None)


# -- AIRUNS_<SECTION>_<KEY> overrides -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "read", "expected"),
    [
        (
            "AIRUNS_DATABASE_URL",
            "postgresql+asyncpg://u@db/airuns",
            lambda s: s.database.url,
            "postgresql+asyncpg://u@db/airuns",
        ),
        ("AIRUNS_SERVER_PORT", "9090", lambda s: s.server.port, 9090),
        ("AIRUNS_SERVER_HOST", "127.0.0.2", lambda s: s.server.host, "127.0.0.2"),
        (
            "AIRUNS_SERVER_LIMITS_MAX_REQUEST_BYTES",
            "1024",
            lambda s: s.server_limits.max_request_bytes,
            1024,
        ),
        (
            "AIRUNS_PROVIDERS_MOCK_API_KEY",
            "sk-mock",
            lambda s: s.providers["mock"].api_key,
            "sk-mock",
        ),
        (
            "AIRUNS_PROVIDERS_OPENAI_BASE_URL",
            "https://proxy.internal/v1",
            lambda s: s.providers["openai"].base_url,
            "https://proxy.internal/v1",
        ),
        (
            "AIRUNS_PROVIDERS_MOCK_TIMEOUTS_READ",
            "7",
            lambda s: s.provider_timeouts("mock").read,
            7.0,
        ),
        ("AIRUNS_TIMEOUTS_READ", "5.5", lambda s: s.timeouts.read, 5.5),
        ("AIRUNS_CAPTURE_REQUEST_BODIES", "false", lambda s: s.capture.request_bodies, False),
        ("AIRUNS_CAPTURE_RESPONSE_BODIES", "0", lambda s: s.capture.response_bodies, False),
        ("AIRUNS_LOGGING_LEVEL", "warning", lambda s: s.logging.level, "warning"),
        ("AIRUNS_DEFAULT_PROVIDER", "mock", lambda s: s.default_provider, "mock"),
        ("AIRUNS_ADMIN_API_KEY", "admin-secret", lambda s: s.admin.api_key, "admin-secret"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("AIRUNS_") else "",
)
def test_env_override_replaces_the_config_value(name, value, read, expected) -> None:
    settings = parse_settings(BASE, {name: value})

    assert read(settings) == expected
    assert type(read(settings)) is type(expected)


def test_env_override_wins_over_an_interpolated_value() -> None:
    environ = {"OPENAI_API_KEY": "sk-interp", "AIRUNS_PROVIDERS_OPENAI_API_KEY": "sk-override"}

    assert parse_settings(BASE, environ).providers["openai"].api_key == "sk-override"


def test_env_override_applies_to_a_section_missing_from_the_file() -> None:
    settings = parse_settings("", {"AIRUNS_DATABASE_URL": "sqlite+aiosqlite:///x.db"})

    assert settings.database.url == "sqlite+aiosqlite:///x.db"


def test_env_override_of_a_provider_with_a_dashed_name_uses_underscores() -> None:
    text = "providers:\n  my-llm: {base_url: 'http://127.0.0.1:1/v1'}\n"

    settings = parse_settings(text, {"AIRUNS_PROVIDERS_MY_LLM_API_KEY": "sk-dash"})

    assert settings.providers["my-llm"].api_key == "sk-dash"


def test_env_override_of_a_pricing_override_becomes_a_decimal() -> None:
    text = "pricing:\n  overrides:\n    my-finetune: {input: 0.30, output: 1.20}\n"

    settings = parse_settings(text, {"AIRUNS_PRICING_OVERRIDES_MY_FINETUNE_INPUT": "0.25"})

    assert settings.pricing.overrides["my-finetune"].input == Decimal("0.25")


@pytest.mark.parametrize(
    "name",
    [
        "AIRUNS_CONFIG",  # the config file's path
        "AIRUNS_ADMIN_KEY",  # read by the shipped config.yaml, harmless with any other
        "AIRUNS_TEST_DATABASE_URL",  # the test suite's
        "AIRUNS_BENCH_POSTGRES_URL",
    ],
)
def test_the_allowed_airuns_variables_that_are_not_overrides_change_nothing(name: str) -> None:
    assert parse_settings(BASE, {name: "x"}) == parse_settings(BASE, {})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "AIRUNS_SERVER_PROT",
            "AIRUNS_SERVER_PROT: unknown setting in the environment"
            " (did you mean AIRUNS_SERVER_PORT?)",
        ),
        (
            "AIRUNS_DATABASE_URI",
            "AIRUNS_DATABASE_URI: unknown setting in the environment"
            " (did you mean AIRUNS_DATABASE_URL?)",
        ),
        (
            "AIRUNS_LOGGING_COLOR",
            "AIRUNS_LOGGING_COLOR: unknown setting in the environment"
            " (expected AIRUNS_<SECTION>_<KEY>)",
        ),
        ("AIRUNS_SERVER", "AIRUNS_SERVER: unknown setting in the environment"),
        ("AIRUNS_NOPE", "AIRUNS_NOPE: unknown setting in the environment (expected AIRUNS_<"),
        ("AIRUNS_SEVRER_PORT", "AIRUNS_SEVRER_PORT: unknown setting in the environment (did you"),
        ("AIRUNS_", "AIRUNS_: unknown setting in the environment"),
        ("AIRUNS_\x00\n", "'AIRUNS_\\x00\\n': unknown setting in the environment"),
        ("AIRUNS_" + "X" * 200, "'AIRUNS_XXXXXXXX"),
        (
            "AIRUNS_PROVIDERS_MOCK_BASEURL",
            "AIRUNS_PROVIDERS_MOCK_BASEURL: unknown setting in the environment"
            " (did you mean AIRUNS_PROVIDERS_MOCK_BASE_URL?)",
        ),
        ("AIRUNS_MODELS_0_NAME", "AIRUNS_MODELS_0_NAME: unknown setting in the environment"),
        (
            "AIRUNS_PROVIDERS_GROQ_API_KEY",
            "AIRUNS_PROVIDERS_GROQ_API_KEY: names no provider or price override of the config file",
        ),
        ("AIRUNS_PRICING_OVERRIDES_NEW_INPUT", "AIRUNS_PRICING_OVERRIDES_NEW_INPUT: names no"),
    ],
)
def test_unknown_variable_in_a_config_section_fails_naming_it(name: str, message: str) -> None:
    assert fails(BASE, {name: "1"}).startswith(message)


def test_a_variable_the_config_file_reads_is_not_an_override() -> None:
    text = BASE + "admin: {api_key: '${AIRUNS_ADMIN_SECRET}'}\n"

    assert parse_settings(text, {"AIRUNS_ADMIN_SECRET": "s"}).admin.api_key == "s"
    assert "AIRUNS_ADMIN_SECRET" in fails(BASE, {"AIRUNS_ADMIN_SECRET": "s"})


def test_a_variable_read_only_in_a_comment_is_still_checked() -> None:
    text = BASE + "# admin: {api_key: '${AIRUNS_ADMIN_SECRET}'}\n"

    assert "AIRUNS_ADMIN_SECRET" in fails(text, {"AIRUNS_ADMIN_SECRET": "s"})


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("AIRUNS_SERVER_PORT", "abc", "server.port"),
        ("AIRUNS_SERVER_PORT", "-1", "server.port"),
        ("AIRUNS_CAPTURE_REQUEST_BODIES", "maybe", "capture.request_bodies"),
        ("AIRUNS_AUTH_MODE", "closed", "auth.mode"),
        ("AIRUNS_TIMEOUTS_CONNECT", "soon", "timeouts.connect"),
    ],
)
def test_bad_env_override_fails_naming_the_key(name: str, value: str, key: str) -> None:
    assert key in fails(BASE, {name: value})


# -- unknown keys and bad values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus: 1", "bogus"),
        ("timeouts: {connect: 1, bogus: 2}", "timeouts.bogus"),
        ("server: {prot: 8080}", "server.prot"),
        ("providers: {mock: {base_url: 'http://x/v1', apikey: k}}", "providers.mock.apikey"),
        (
            "providers: {mock: {base_url: 'http://x/v1', timeouts: {raed: 1}}}",
            "providers.mock.timeouts.raed",
        ),
        (
            "pricing: {overrides: {m: {input: 1, output: 2, cache_read: 3}}}",
            "pricing.overrides.m.cache_read",
        ),
        ("capture: {max_body: 10}", "capture.max_body"),
    ],
)
def test_unknown_key_fails_naming_it(text: str, key: str) -> None:
    message = fails(text)

    assert key in message
    assert "unknown" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("server: {port: abc}", "server.port"),
        ("server: {port: -1}", "server.port"),
        ("server: {port: true}", "server.port"),
        ("server: {workers: 0}", "server.workers"),
        ("timeouts: {read: -1}", "timeouts.read"),
        ("timeouts: {connect: soon}", "timeouts.connect"),
        ("auth: {mode: other}", "auth.mode"),
        ("capture: {on_client_disconnect: other}", "capture.on_client_disconnect"),
        ("capture: {request_bodies: maybe}", "capture.request_bodies"),
        ("capture: {max_body_bytes: -5}", "capture.max_body_bytes"),
        ("logging: {level: loud}", "logging.level"),
        ("server: [1, 2]", "server"),
        ("server: {host: [a, b]}", "server.host"),
        ("providers: [openai]", "providers"),
        ("providers: {mock: {api_key: k}}", "base_url"),
        ("providers: {mock: {base_url: 'ftp://x'}}", "providers.mock.base_url"),
        ("models: {name: fast}", "models"),
        ("models: [{name: fast, provider: mock}]", "model"),
        ("pricing: {overrides: {m: {input: abc, output: 1}}}", "pricing.overrides.m.input"),
        ("pricing: {overrides: {m: {input: -1, output: 1}}}", "pricing.overrides.m.input"),
        ("pricing: {overrides: {m: {input: 1}}}", "pricing.overrides.m.output"),
        ("pricing: {overrides: {m: 0.5}}", "pricing.overrides.m"),
    ],
)
def test_bad_value_fails_naming_the_key(text: str, key: str) -> None:
    assert key in fails(text)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("models: [{name: fast, provider: nope, model: m}]", "models[0].provider"),
        ("default_provider: nope", "default_provider"),
    ],
)
def test_reference_to_an_unknown_provider_fails_naming_the_key(text: str, key: str) -> None:
    message = fails(BASE + text if text.startswith("default") else _with_models(text))

    assert key in message
    assert "nope" in message


def _with_models(models: str) -> str:
    return "providers: {mock: {base_url: 'http://127.0.0.1:9000/v1'}}\n" + models


def test_second_model_alias_with_unknown_provider_is_named_by_index() -> None:
    text = _with_models(
        "models:\n  - {name: a, provider: mock, model: m}\n  - {name: b, provider: gone, model: m}"
    )

    assert "models[1].provider" in fails(text)


@pytest.mark.parametrize("text", ["server: {port: [", "- just\n- a list", "42"])
def test_invalid_yaml_or_non_mapping_document_fails(text: str) -> None:
    fails(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "server:\n  host: a\n  port: {1\n",
            "conf.yaml:4:1: invalid YAML: expected ',' or '}', but got '<stream end>'",
        ),
        (
            "server:\n\tport: 1\n",
            "conf.yaml:2:1: invalid YAML: found character '\\t' that cannot start any token",
        ),
        ("a: b: c\n", "conf.yaml:1:5: invalid YAML: mapping values are not allowed here"),
        ("- a\n", "conf.yaml: expected a mapping of sections at the top level"),
    ],
)
def test_yaml_error_names_the_file_line_and_column_in_one_line(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, {}, source="conf.yaml")

    assert str(caught.value) == message


def test_yaml_error_from_a_file_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("server: {port: 8080\nproviders:\n")

    with pytest.raises(SettingsError, match=rf"^{path}:2:10: invalid YAML: "):
        load_settings(path, {})


def test_a_config_path_that_is_a_folder_fails_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path, {})

    assert str(caught.value) == f"config file {tmp_path}: Is a directory"


def test_fractional_port_fails_naming_the_key() -> None:
    assert "server.port" in fails("server: {port: 8080.7}")


@pytest.mark.parametrize(
    ("text", "environ"),
    [
        ("server: {port: 70000}", {}),
        ("server: {port: 0}", {}),
        ("", {"AIRUNS_SERVER_PORT": "99999"}),
        ("", {"AIRUNS_SERVER_PORT": "0"}),
    ],
)
def test_port_outside_1_to_65535_fails_naming_the_key(text: str, environ: dict) -> None:
    from_environment = " (from AIRUNS_SERVER_PORT)" if environ else ""
    assert fails(text, environ) == f"server.port: must be between 1 and 65535{from_environment}"


@pytest.mark.parametrize(
    "value", ["-1", "abc", "", "1e3", "0x50", "8_080", " 80", "80\n", "８０８０", "nan", "\x00"]
)
def test_an_environment_number_must_be_plain_digits(value: str) -> None:
    message = fails("", {"AIRUNS_SERVER_PORT": value})
    expected = f"server.port: expected a non-negative number, got {value!r}"
    assert message == f"{expected} (from AIRUNS_SERVER_PORT)"


def test_a_huge_environment_number_is_refused_and_clipped() -> None:
    assert fails("", {"AIRUNS_SERVER_PORT": "9" * 30}) == (
        "server.port: must be between 1 and 65535 (from AIRUNS_SERVER_PORT)"
    )
    message = fails("", {"AIRUNS_SERVER_PORT": "9" * 5000})
    assert message.startswith("server.port: expected a non-negative number, got '999")
    assert message.endswith("... (from AIRUNS_SERVER_PORT)") and len(message) < 150


def test_a_decimal_environment_value_is_taken_where_a_fraction_is_allowed() -> None:
    assert parse_settings("", {"AIRUNS_TIMEOUTS_READ": "2.5"}).timeouts.read == 2.5


# -- logging ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["auto", "json", "text"])
def test_logging_format_is_auto_json_or_text(fmt: str) -> None:
    assert parse_settings(f"logging: {{format: {fmt}}}", {}).logging.format == fmt
    assert parse_settings("", {"AIRUNS_LOGGING_FORMAT": fmt}).logging.format == fmt


@pytest.mark.parametrize("value", ["xml", "JSON", "", " json", "\x00", "json\ntext", "a" * 10_000])
def test_logging_format_defaults_to_auto_and_refuses_others(value: str) -> None:
    assert parse_settings("", {}).logging.format == "auto"
    message = fails("", {"AIRUNS_LOGGING_FORMAT": value})
    if value in ("\x00", "json\ntext"):
        assert message.startswith("logging.format: control characters are not allowed")
    else:
        assert (
            message
            == "logging.format: must be one of auto, json, text (from AIRUNS_LOGGING_FORMAT)"
        )


# -- pricing ------------------------------------------------------------------------------------


def test_pricing_overrides_become_exact_decimals() -> None:
    text = """
pricing:
  overrides:
    my-finetune: {input: 0.30, output: 1.20, cached_input: 0.03}
    tiny: {input: "0.000001", output: 0.1, cache_write: 3.75}
    whole: {input: 2, output: 8}
"""
    overrides = parse_settings(text, {}).pricing.overrides

    assert overrides["my-finetune"] == Price(Decimal("0.30"), Decimal("1.20"), Decimal("0.03"))
    assert overrides["tiny"] == Price(
        Decimal("0.000001"), Decimal("0.1"), cache_write=Decimal("3.75")
    )
    assert overrides["whole"] == Price(Decimal("2"), Decimal("8"))
    assert overrides["tiny"].output != Decimal(0.1)  # not the binary float's expansion
    assert all(
        isinstance(amount, Decimal)
        for price in overrides.values()
        for amount in (price.input, price.output)
    )


def test_pricing_override_without_cached_prices_leaves_them_unset() -> None:
    text = "pricing: {overrides: {m: {input: 1, output: 2}}}"

    price = parse_settings(text, {}).pricing.overrides["m"]

    assert price.cached_input is None
    assert price.cache_write is None


# -- timeouts -----------------------------------------------------------------------------------


def test_provider_without_timeouts_uses_the_global_timeouts() -> None:
    settings = parse_settings(BASE + "timeouts: {connect: 3, read: 30, stream_idle: 15}", {})

    assert settings.provider_timeouts("mock") == Timeouts(3.0, 30.0, 15.0)


def test_provider_timeouts_are_used_for_that_provider_only() -> None:
    text = BASE.replace(
        'mock: {base_url: "http://127.0.0.1:9000/v1"}',
        'mock: {base_url: "http://127.0.0.1:9000/v1",'
        " timeouts: {connect: 1, read: 2, stream_idle: 3}}",
    )

    settings = parse_settings(text, {})

    assert settings.provider_timeouts("mock") == Timeouts(1.0, 2.0, 3.0)
    assert settings.provider_timeouts("openai") == Timeouts()


def test_timeouts_default_to_spec_values() -> None:
    assert parse_settings("", {}).timeouts == Timeouts(connect=10.0, read=600.0, stream_idle=120.0)


def test_provider_timeouts_inherit_unset_keys_from_the_global_timeouts() -> None:
    text = (
        "timeouts: {connect: 3, read: 30, stream_idle: 15}\n"
        "providers: {mock: {base_url: 'http://127.0.0.1:9000/v1', timeouts: {read: 5}}}\n"
    )

    assert parse_settings(text, {}).provider_timeouts("mock") == Timeouts(3.0, 5.0, 15.0)


# -- files --------------------------------------------------------------------------------------


def test_load_settings_reads_the_given_path(tmp_path: Path) -> None:
    path = tmp_path / "airuns.yaml"
    path.write_text("server: {port: 9999}\n")

    assert load_settings(path, {}).server.port == 9999


def test_load_settings_falls_back_to_airuns_config(tmp_path: Path) -> None:
    path = tmp_path / "from-env.yaml"
    path.write_text("server: {port: 9998}\n")

    assert load_settings(None, {"AIRUNS_CONFIG": str(path)}).server.port == 9998


def test_load_settings_of_a_missing_file_fails_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(SettingsError, match="nope.yaml"):
        load_settings(missing, {})


@pytest.mark.skipif(not REPO_CONFIG.exists(), reason="no config.yaml in the repository yet")
def test_repository_config_yaml_parses_without_any_environment() -> None:
    settings = parse_settings(REPO_CONFIG.read_text(), {})

    assert settings.providers
    assert settings.default_provider is None or settings.default_provider in settings.providers


def test_auth_mode_keys_is_refused_until_user_keys_exist() -> None:
    with pytest.raises(SettingsError, match="auth.mode"):
        parse_settings("auth: {mode: keys}", {})


# -- providers.<name>.price_as ------------------------------------------------------------------

AZURE = (
    "providers:\n  azure-east: {base_url: 'https://example.openai.azure.com/v1', price_as: %s}\n"
)


def test_price_as_names_the_genai_prices_provider_a_provider_is_priced_as() -> None:
    settings = parse_settings(AZURE % "openai" + "  mock: {base_url: 'http://m/v1'}\n", {})

    assert settings.providers["azure-east"].price_as == "openai"
    assert settings.providers["mock"].price_as == ""
    assert settings.price_as() == {"azure-east": "openai"}  # providers without one are left out


@pytest.mark.parametrize(
    ("price_as", "message"),
    [
        ("x", "providers.azure-east.price_as: unknown genai-prices provider 'x'"),
        (
            "opneai",
            "providers.azure-east.price_as: unknown genai-prices provider 'opneai'"
            " (did you mean 'openai'?)",
        ),
        (
            "azure-east",  # an airuns provider name is not a genai-prices id
            "providers.azure-east.price_as: unknown genai-prices provider 'azure-east'"
            " (did you mean 'azure'?)",
        ),
    ],
)
def test_unknown_price_as_fails_naming_the_key(price_as: str, message: str) -> None:
    assert fails(AZURE % price_as) == message


def test_price_as_from_the_environment_is_checked_too() -> None:
    environ = {"AIRUNS_PROVIDERS_AZURE_EAST_PRICE_AS": "nobody"}

    assert "providers.azure-east.price_as" in fails(AZURE % "openai", environ)
    fixed = parse_settings(AZURE % "x", {"AIRUNS_PROVIDERS_AZURE_EAST_PRICE_AS": "Azure"})
    assert fixed.price_as() == {"azure-east": "Azure"}  # ids match in any case, as in lookups


def test_unknown_price_as_stops_airuns_serve_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(AZURE % "x")

    assert cli_main(["serve", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (
        "airuns: configuration error: "
        "providers.azure-east.price_as: unknown genai-prices provider 'x'\n"
    )
