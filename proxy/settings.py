"""Configuration: `config.yaml` text + environment → frozen, validated settings.

Pure (`parse_settings(text, environ)`): read once at start, then passed in. Unknown keys and
bad values raise `SettingsError` naming the key; per-1M prices become `Decimal` here, once.

Environment overrides: `AIRUNS_<SECTION>_<KEY>` sets any scalar. Any other `AIRUNS_*` variable
is an error, like an unknown key (a typo must not be silently ignored), except the few names
airuns reads that are not overrides (`NOT_OVERRIDES`) and the variables the config file itself
reads with `${…}`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from pricing.price import Price


class SettingsError(ValueError):
    """A configuration key is unknown or has a bad value; the message names the key."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = "sqlite+aiosqlite:///./airuns.db"


@dataclass(frozen=True, slots=True)
class AdminSettings:
    api_key: str = ""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    mode: str = "open"


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    read: float = 600.0
    stream_idle: float = 120.0


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    base_url: str
    api_key: str = ""
    timeouts: Timeouts | None = None
    # The genai-prices provider id whose prices apply (e.g. `openai` for an Azure deployment);
    # empty: the provider's own name, if genai-prices knows it.
    price_as: str = ""


@dataclass(frozen=True, slots=True)
class ModelAlias:
    name: str
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one connection or call may cost the server (SPEC "Configuration")."""

    max_request_bytes: int = 10 * 1024 * 1024  # a larger body: 413
    max_header_bytes: int = 64 * 1024  # a larger request line + header block: 431
    header_timeout: float = 10.0  # seconds to send the request line and headers, else 408
    body_timeout: float = 30.0  # seconds a request body may stall between chunks, else 408
    max_event_bytes: int = 16 * 1024 * 1024  # one SSE event beyond this ends the stream
    max_connections: int = 0  # concurrent connections (and calls) before 503; 0: no cap


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    request_bodies: bool = True
    response_bodies: bool = True
    max_body_bytes: int = 1024 * 1024
    on_client_disconnect: str = "cancel"
    drain_timeout: float = 30.0
    max_drains: int = 32


@dataclass(frozen=True, slots=True)
class PricingSettings:
    overrides: dict[str, Price] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    """The `recording:` keys; the app builds the writer's own `WriterSettings` from them."""

    queue_size: int = 10000
    batch_size: int = 500
    flush_interval: float = 0.1
    spool_dir: str = "./airuns-spool"
    # A record still waiting for the database after this many seconds is fsync'd to the spool.
    spool_after: float = 1.0
    # Seconds between heartbeats; a process silent for 3 of them is taken for dead.
    heartbeat_interval: float = 5.0


@dataclass(frozen=True, slots=True)
class ShutdownSettings:
    grace_period: float = 30.0


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "info"
    format: str = "auto"  # auto: text on a terminal, JSON lines otherwise; or json, text


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    providers: dict[str, ProviderSettings] = field(default_factory=dict)
    models: list[ModelAlias] = field(default_factory=list)
    default_provider: str | None = None
    server_limits: ServerLimits = field(default_factory=ServerLimits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    pricing: PricingSettings = field(default_factory=PricingSettings)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    shutdown: ShutdownSettings = field(default_factory=ShutdownSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    def provider_timeouts(self, provider: str) -> Timeouts:
        return self.providers[provider].timeouts or self.timeouts

    def price_as(self) -> dict[str, str]:
        """Provider name → the genai-prices provider id it is priced as, where one is set."""
        return {name: p.price_as for name, p in self.providers.items() if p.price_as}


_CHOICES = {
    "auth.mode": {"open", "keys"},
    "capture.on_client_disconnect": {"cancel", "drain"},
    "logging.level": {"debug", "info", "warning", "error"},
    "logging.format": {"auto", "json", "text"},
}
# AIRUNS_* names that are not overrides: the config file's path; the admin key the shipped
# config.yaml reads (it stays set when another config does not); the Postgres URLs the test
# suite and the benchmarks read.
NOT_OVERRIDES = frozenset(
    {"AIRUNS_CONFIG", "AIRUNS_ADMIN_KEY", "AIRUNS_TEST_DATABASE_URL", "AIRUNS_BENCH_POSTGRES_URL"}
)
# What Kubernetes puts in every pod of a namespace with a Service named `airuns` (and Docker's
# legacy links in linked containers): AIRUNS_SERVICE_HOST, AIRUNS_PORT, AIRUNS_PORT_8080_TCP…
SERVICE_LINKS = re.compile(r"AIRUNS_(SERVICE_[A-Z0-9_]+|PORT|PORT_[0-9]+_(TCP|UDP|SCTP)(_[A-Z]+)?)")
MAX_WORKERS = 256
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Expand `${VAR}` and `${VAR:-default}`; an unset VAR without default is an error."""

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise SettingsError(f"environment variable {name} is not set (config uses ${{{name}}})")

    return _INTERPOLATION.sub(expand, text)


def parse_settings(text: str, environ: Mapping[str, str], source: str = "config") -> Settings:
    """`source` names the file in YAML errors (`config.yaml:3:7: …`)."""
    document = _load_yaml(text, source)
    read_by_config = _referenced_variables(document)
    document = _interpolate_values(document, environ)
    overridden = _apply_env_overrides(document, environ, ignore=NOT_OVERRIDES | read_by_config)
    _inherit_provider_timeouts(document)
    try:
        settings = _build(Settings, document, "")
        _check_references(settings)
    except SettingsError as error:  # a bad value from the environment: say which variable
        key = str(error).split(":", 1)[0]
        if key in overridden:
            raise SettingsError(f"{error} (from {overridden[key]})") from None
        raise
    return settings


class _ConfigLoader(yaml.SafeLoader):
    """YAML without aliases: `x: &a [*a]` is a cycle no reader of the config expects, and a
    few nested aliases expand to millions of nodes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", mark)
        return super().compose_node(parent, index)


def _load_yaml(text: str, source: str) -> dict:
    try:
        document = yaml.load(text, Loader=_ConfigLoader) or {}  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "unreadable"
        raise SettingsError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SettingsError(f"{source}: invalid YAML: {first}") from None
    if not isinstance(document, dict):
        raise SettingsError(f"{source}: expected a mapping of sections at the top level")
    return document


def _referenced_variables(node: Any) -> set[str]:
    """The environment variables the config's string values read with `${…}`."""
    if isinstance(node, dict):
        return set().union(*map(_referenced_variables, node.values()))
    if isinstance(node, list):
        return set().union(*map(_referenced_variables, node))
    if isinstance(node, str):
        return {match.group(1) for match in _INTERPOLATION.finditer(node)}
    return set()


def _interpolate_values(node: Any, environ: Mapping[str, str]) -> Any:
    """Expand `${VAR}` in string values only, so comments and keys are never expanded."""
    if isinstance(node, dict):
        return {key: _interpolate_values(value, environ) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_values(value, environ) for value in node]
    if isinstance(node, str):
        return interpolate(node, environ)
    return node


def _inherit_provider_timeouts(document: dict) -> None:
    """A provider's own `timeouts` fill their gaps from the top-level `timeouts`."""
    shared = document.get("timeouts")
    providers = document.get("providers")
    if not isinstance(shared, dict) or not isinstance(providers, dict):
        return
    for provider in providers.values():
        if isinstance(provider, dict) and isinstance(provider.get("timeouts"), dict):
            provider["timeouts"] = {**shared, **provider["timeouts"]}


def load_settings(path: str | Path | None, environ: Mapping[str, str]) -> Settings:
    """Read the config file (from `path`, `AIRUNS_CONFIG`, else ./config.yaml)."""
    chosen = Path(path or environ.get("AIRUNS_CONFIG") or "config.yaml")
    try:
        text = chosen.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"config file {chosen} not found") from None
    except UnicodeDecodeError:
        raise SettingsError(f"config file {chosen} is not UTF-8 text") from None
    except OSError as exc:
        raise SettingsError(f"config file {chosen}: {exc.strerror or exc}") from None
    return parse_settings(text, environ, source=str(chosen))


def _apply_env_overrides(
    document: dict, environ: Mapping[str, str], ignore: frozenset[str] | set[str]
) -> dict[str, str]:
    """`AIRUNS_<SECTION>_<KEY>` overrides any scalar, provider entries included; any other
    `AIRUNS_*` name not in `ignore` is refused (see the module docstring). Returns the keys
    set this way (`server.port`), each with its variable."""
    paths = _scalar_paths(Settings, document, ())
    by_name = {_variable_name(p): p for p in paths}
    overridden: dict[str, str] = {}
    for name in sorted(environ):
        path = by_name.get(name)
        if path is None:
            refused = name.startswith("AIRUNS_") and name not in ignore
            if refused and not SERVICE_LINKS.fullmatch(name):
                raise SettingsError(_unknown_variable(name, by_name))
            continue
        node = document
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise SettingsError(f"{'.'.join(path)}: cannot override inside a non-mapping")
        node[path[-1]] = environ[name]
        overridden[".".join(path)] = name
    return overridden


def _variable_name(path: tuple[str, ...]) -> str:
    return "AIRUNS_" + "_".join(path).upper().replace("-", "_")


def _unknown_variable(name: str, by_name: Mapping[str, tuple[str, ...]]) -> str:
    """The refusal, with the setting it most likely meant: a key of the same section when the
    section is right (`AIRUNS_SERVER_PROT`), else any setting spelt almost the same."""
    shown = name if name.isprintable() and len(name) <= 80 else repr(name[:80])
    sections = [_variable_name((s,)) for s in get_type_hints(Settings)]
    section = max((s for s in sections if name.startswith(s + "_")), key=len, default=None)
    if section is not None:
        keys = {n[len(section) :]: n for n in by_name if n.startswith(section + "_")}
        # An entry's name (a provider, a priced model) must match closely, not just its key.
        cutoff = 0.85 if section in ("AIRUNS_PROVIDERS", "AIRUNS_PRICING") else 0.6
        close = difflib.get_close_matches(name[len(section) :], list(keys), n=1, cutoff=cutoff)
        close = [keys[c] for c in close]
    else:
        close = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.9)
    if close:
        return f"{shown}: unknown setting in the environment (did you mean {close[0]}?)"
    if section in ("AIRUNS_PROVIDERS", "AIRUNS_PRICING"):
        return (
            f"{shown}: names no provider or price override of the config file (the environment "
            "overrides the keys of entries the file has)"
        )
    return f"{shown}: unknown setting in the environment (expected AIRUNS_<SECTION>_<KEY>)"


def _scalar_paths(cls: type, doc: Any, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, hint in get_type_hints(cls).items():
        kind = _unwrap_optional(hint)
        sub = doc.get(name) if isinstance(doc, dict) else None
        if is_dataclass(kind):
            paths += _scalar_paths(kind, sub or {}, prefix + (name,))
        elif get_origin(kind) is dict and is_dataclass(get_args(kind)[1]) and isinstance(sub, dict):
            for key, entry in sub.items():
                paths += _scalar_paths(get_args(kind)[1], entry, prefix + (name, str(key)))
        elif get_origin(kind) not in (dict, list):
            paths.append(prefix + (name,))
    return paths


def _unwrap_optional(hint: Any) -> Any:
    args = [a for a in get_args(hint) if a is not type(None)]
    if get_origin(hint) is not None and type(None) in get_args(hint) and len(args) == 1:
        return args[0]
    return hint


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise SettingsError(f"{where or 'config'}: expected a mapping")
    hints = get_type_hints(cls)
    unknown = set(raw) - set(hints)
    if unknown:
        key = sorted(unknown)[0]
        raise SettingsError(f"{where + '.' if where else ''}{key}: unknown key")
    values = {}
    for name, value in raw.items():
        values[name] = _convert(hints[name], value, f"{where + '.' if where else ''}{name}")
    try:
        built = cls(**values)
    except TypeError as exc:
        missing = [f.name for f in fields(cls) if f.name not in values]
        raise SettingsError(
            f"{where}: missing required key {missing[0] if missing else exc}"
        ) from None
    if not _CHOICES:
        return built
    for f in fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        if key in _CHOICES and getattr(built, f.name) not in _CHOICES[key]:
            choices = ", ".join(sorted(_CHOICES[key]))
            raise SettingsError(f"{key}: must be one of {choices}")
    return built


def _convert(hint: Any, value: Any, key: str) -> Any:
    if value is None and type(None) in get_args(hint):
        return None
    kind = _unwrap_optional(hint)
    if value is None and kind is str:
        return ""
    if is_dataclass(kind):
        if kind is Price:
            return _price(value, key)
        return _build(kind, value, key)
    origin = get_origin(kind)
    if origin is dict:
        if not isinstance(value, dict):
            raise SettingsError(f"{key}: expected a mapping")
        item = get_args(kind)[1]
        return {str(k): _convert(item, v, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise SettingsError(f"{key}: expected a list")
        item = get_args(kind)[0]
        return [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    return _scalar(kind, value, key)


def _scalar(kind: Any, value: Any, key: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {
            "true",
            "1",
            "yes",
            "on",
            "false",
            "0",
            "no",
            "off",
        }:
            return value.lower() in {"true", "1", "yes", "on"}
        raise SettingsError(f"{key}: expected true or false, got {_shown(value)}")
    if kind in (int, float):
        number = _number(value)
        if number is None or not 0 <= number < float("inf"):  # NaN fails both comparisons
            raise SettingsError(f"{key}: expected a non-negative number, got {_shown(value)}")
        if kind is int:
            if not number.is_integer():
                raise SettingsError(f"{key}: expected a whole number, got {_shown(value)}")
            return int(number)
        return number
    if kind is str:
        if isinstance(value, (dict, list)):
            raise SettingsError(f"{key}: expected a string")
        text = str(value)
        if _CONTROL.search(text) or not _is_utf8(text):
            raise SettingsError(f"{key}: control characters are not allowed, got {_shown(text)}")
        return text
    return value


# No setting holds a control character; a NUL or a newline is a mistake or an attack (it
# would reach a URL, a header, a log line).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _is_utf8(text: str) -> bool:
    """False for a lone surrogate (an environment value that was not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: Any) -> str:
    """A bad value as the error shows it: quoted, escaped, and clipped (it may be hostile)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def _number(value: Any) -> float | None:
    """A YAML number, or text of plain ASCII digits (an environment override): not `1e3`,
    `0x50`, `8_080`, ` 80` or full-width digits, which Python's `float()` would take."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return float(value) if _DECIMAL.fullmatch(value) and value.isascii() else None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _price(value: Any, key: str) -> Price:
    if not isinstance(value, dict):
        raise SettingsError(f"{key}: expected a mapping of per-1M prices")
    unknown = set(value) - {"input", "output", "cached_input", "cache_write"}
    if unknown:
        raise SettingsError(f"{key}.{sorted(unknown)[0]}: unknown key")
    prices = {}
    for name, amount in value.items():
        try:
            prices[name] = Decimal(str(amount))
        except InvalidOperation:
            raise SettingsError(f"{key}.{name}: expected a number, got {amount!r}") from None
        if prices[name] < 0:
            raise SettingsError(f"{key}.{name}: must not be negative")
    for required in ("input", "output"):
        if required not in prices:
            raise SettingsError(f"{key}.{required}: missing required key")
    return Price(**prices)


def _check_references(settings: Settings) -> None:
    for index, alias in enumerate(settings.models):
        if alias.provider not in settings.providers:
            raise SettingsError(f"models[{index}].provider: unknown provider {alias.provider!r}")
    if settings.default_provider and settings.default_provider not in settings.providers:
        raise SettingsError(f"default_provider: unknown provider {settings.default_provider!r}")
    for name, provider in settings.providers.items():
        if not provider.base_url.startswith(("http://", "https://")):
            raise SettingsError(f"providers.{name}.base_url: must start with http:// or https://")
        if "/" in name:
            raise SettingsError(f"providers.{name}: a provider name cannot contain '/'")
    _check_price_as(settings.price_as())
    if settings.auth.mode == "keys":  # refused rather than silently running open
        raise SettingsError(
            "auth.mode: 'keys' (per-user proxy keys) is not available yet; use open"
        )
    if not 1 <= settings.server.port <= 65535:
        raise SettingsError("server.port: must be between 1 and 65535")
    if not 1 <= settings.server.workers <= MAX_WORKERS:
        raise SettingsError(f"server.workers: must be between 1 and {MAX_WORKERS}")
    limits = settings.server_limits
    for key in ("max_header_bytes", "header_timeout", "body_timeout", "max_event_bytes"):
        if getattr(limits, key) <= 0:
            raise SettingsError(f"server_limits.{key}: must be greater than 0")
    for key in ("batch_size", "flush_interval", "spool_after", "heartbeat_interval"):
        if getattr(settings.recording, key) <= 0:
            raise SettingsError(f"recording.{key}: must be greater than 0")


def _check_price_as(price_as: Mapping[str, str]) -> None:
    """A typo in `price_as` would leave the provider silently unpriced: refuse it at start."""
    if not price_as:
        return
    from pricing.table import genai_provider_ids  # ~0.25 s of price data: only when needed

    known = genai_provider_ids()
    for name, provider_id in price_as.items():
        if provider_id.lower() not in known:
            close = difflib.get_close_matches(provider_id.lower(), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingsError(
                f"providers.{name}.price_as: unknown genai-prices provider {provider_id!r}{hint}"
            )
