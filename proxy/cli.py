"""`airuns` command line: argument parsing, then a call into the package that does the work.

Every failure a user can fix (a configuration key, the database URL, a busy port, a bad
option) ends in one line on stderr and exit status 2; heavy imports wait for the command
that needs them, so `--help` and `--version` answer at once.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import math
import os
import signal
import socket
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from persistence.engine import DatabaseConfigError
from proxy.runs_cli import add_runs_commands
from proxy.settings import MAX_WORKERS, Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from proxy.observability import Logger

DESCRIPTION = (
    "A self-hosted, OpenAI-compatible proxy that records every LLM call as a task in a run."
)
EPILOG = "Run `airuns COMMAND --help` for a command's options."
USAGE_ERROR = 2
INTERRUPTED = 130  # what a shell reports for a command stopped by SIGINT
_START_MIGRATION_TIMEOUT = 15.0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:  # Ctrl-C before the server took the signal over: no traceback
        print("airuns: interrupted", file=sys.stderr)
        # Nor the noise of what was cut short (a database connection half open, collected at
        # exit): the user asked to stop.
        logging.disable()
        return INTERRUPTED
    except SettingsError as exc:
        return _fail(f"configuration error: {exc}")
    except DatabaseConfigError as exc:
        return _fail(f"database error: database.url: {exc}")


def _fail(message: str) -> int:
    print(f"airuns: {' '.join(message.split())}", file=sys.stderr)  # one line, always
    return USAGE_ERROR


def airuns_version() -> str:
    try:
        return version("airuns")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default after its help, except where there is none to show: options
    whose default comes from the config say so in their own help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with defaults in `--help` and one-line errors (no usage block)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def port_number(text: str) -> int:
    value = _whole_number(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a port number")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a port: must be 1 to 65535")
    return value


def worker_count(text: str) -> int:
    value = _whole_number(text)
    if value is None or not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} is not a worker count: must be 1 to {MAX_WORKERS}"
        )
    return value


def _whole_number(text: str) -> int | None:
    """Plain ASCII digits only: `int()` would also take ` 80`, `8_080` and full-width digits."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else 10**18  # any huge number is as out of range


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def build_parser() -> Parser:
    parser = Parser(prog="airuns", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument(
        "--version",
        action="version",
        version=f"airuns {airuns_version()}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="migrate the database, then serve the proxy and admin API",
        description="Apply migrations, then serve the proxy and admin API until SIGTERM/SIGINT.",
    )
    config_option(serve)
    serve.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    serve.add_argument(
        "--port", type=port_number, help="port to listen on (default: server.port, 8080)"
    )
    serve.add_argument(
        "--workers", type=worker_count, help="server processes (default: server.workers, 1)"
    )
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser(
        "migrate",
        help="apply database migrations",
        description="Bring database.url's schema to this version (serve also does it at start).",
    )
    config_option(migrate)
    migrate.set_defaults(run=_migrate)

    health = commands.add_parser(
        "healthcheck",
        help="ask a running airuns whether it is ready (exit 0) or not (exit 1)",
        description="GET /readyz on the configured server.host and server.port (a wildcard "
        "host is asked on loopback): what the Docker image's HEALTHCHECK runs.",
    )
    config_option(health)
    health.add_argument("--timeout", type=float, default=4.0, help="seconds to wait for the answer")
    health.set_defaults(run=_healthcheck)

    mock = commands.add_parser(
        "mock-upstream",
        help="run the fake OpenAI-compatible provider",
        description="A fake OpenAI-compatible provider: deterministic replies, streaming, "
        "usage, and delays or errors on request (see the README).",
    )
    mock.add_argument("--host", default="127.0.0.1", help="address to listen on")
    mock.add_argument("--port", type=port_number, default=9000, help="port to listen on")
    mock.set_defaults(run=_mock_upstream)

    add_runs_commands(commands, config_option)
    return parser


def config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $AIRUNS_CONFIG, else ./config.yaml)",
    )


def load(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, os.environ)


def _serve(args: argparse.Namespace) -> int:
    from persistence.engine import display_url
    from proxy.observability import configure_process_logging, log_start
    from proxy.server import ServerConfig, run_server

    settings = load(args)
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    log = configure_process_logging(settings.logging.level, settings.logging.format)
    problem = _listen_problem(host, port)
    if problem:  # named as the user set it: an option, else the config key
        which, reason = problem
        name = f"--{which}" if getattr(args, which) else f"server.{which}"
        raise SettingsError(f"{name}: {reason}")
    _check_spool_dir(settings.recording.spool_dir)
    _migrate_at_start(settings.database.url, log)
    if args.config:  # the server's workers read the config from the environment
        os.environ["AIRUNS_CONFIG"] = os.path.abspath(args.config)
    _stop_signals_exit_cleanly()
    config = ServerConfig(
        "proxy.asgi:create_from_environment",
        limits=settings.server_limits,
        factory=True,
        host=host,
        port=port,
        workers=args.workers or settings.server.workers,
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_config=None,  # uvicorn's records go through our handler (one format)
        log_level="warning",  # its info lines ("Uvicorn running on…") are the start line's job
        timeout_graceful_shutdown=math.ceil(settings.shutdown.grace_period),  # 0.5 s is not 0
    )

    def announce() -> None:
        log_start(
            log,
            version=airuns_version(),
            url=f"http://{_url_host(host)}:{port}",
            database=display_url(settings.database.url),
            providers={name: p.base_url for name, p in settings.providers.items()},
            admin_api=bool(settings.admin.api_key),
        )

    run_server(config, on_started=announce)
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _listen_problem(host: str, port: int) -> tuple[str, str] | None:
    """(`host` or `port`, why) when (host, port) cannot be listened on, checked before anything
    starts (uvicorn would find out only after the app and its writer had started)."""
    from proxy.server import check_can_listen

    try:
        check_can_listen(host, port)
    except socket.gaierror as exc:
        return "host", f"cannot listen on {host!r} ({_reason(exc)})"
    except (ValueError, UnicodeError) as exc:  # a NUL, or a name IDNA cannot encode
        return "host", f"cannot listen on {host!r} ({exc})"
    except OSError as exc:
        which = "host" if exc.errno == errno.EADDRNOTAVAIL else "port"
        return which, f"cannot listen on {_url_host(host)}:{port} ({_reason(exc)})"
    return None


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _check_spool_dir(folder: str) -> None:
    """The spool is where records wait when the database does not: a folder airuns cannot
    write would lose them in the first outage, so it stops the start instead."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise SettingsError(
            f"recording.spool_dir: cannot write to {folder} ({_reason(exc)})"
        ) from None


def _migrate_at_start(url: str, log: Logger) -> None:
    """A database that cannot work as configured stops the start (DatabaseConfigError); one
    that does not answer is served through: records wait, and the app migrates it later."""
    from persistence.engine import display_url
    from persistence.migrate import describe_error, migrate

    try:
        asyncio.run(asyncio.wait_for(migrate(url), _START_MIGRATION_TIMEOUT))
    except DatabaseConfigError:
        raise
    except Exception as error:  # the proxy must serve without its database; records spool
        log.warning(
            "database unreachable at start; serving anyway, records are kept until it answers",
            database=display_url(url),
            error=describe_error(error),
        )


def _stop_signals_exit_cleanly() -> None:
    """uvicorn re-raises SIGTERM/SIGINT once its graceful shutdown is done (in-flight calls
    finished, records flushed); that is the stop that was asked for: exit 0, not a signal death."""

    def exit_zero(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, exit_zero)


def _migrate(args: argparse.Namespace) -> int:
    """Exit 2 when the database cannot work as configured, 1 when it does not answer."""
    from persistence.engine import display_url
    from persistence.migrate import describe_error, migrate
    from proxy.observability import configure_process_logging

    settings = load(args)
    log = configure_process_logging(settings.logging.level, settings.logging.format)
    url = settings.database.url
    try:
        asyncio.run(migrate(url))
    except DatabaseConfigError:
        raise
    except Exception as error:  # nothing to serve through here: say so, and let a retry come
        reason = describe_error(error)
        print(f"airuns: database unreachable: {display_url(url)} ({reason})", file=sys.stderr)
        return 1
    log.info("database schema is up to date", database=display_url(url))
    return 0


def _healthcheck(args: argparse.Namespace) -> int:
    """0 when /readyz answers 200; 1, with one line saying why, otherwise."""
    import urllib.error
    import urllib.request

    settings = load(args)
    host = _WILDCARDS.get(settings.server.host, settings.server.host)
    url = f"http://{_url_host(host)}:{settings.server.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout):  # noqa: S310 (http only)
            return 0
    except urllib.error.HTTPError as error:
        reason = f"{error.code} {error.read(200).decode(errors='replace')}"
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
    print(f"airuns: not ready: {url}: {' '.join(str(reason).split())}", file=sys.stderr)
    return 1


# A server listening on every address is asked on loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def _mock_upstream(args: argparse.Namespace) -> int:
    from proxy.mock_upstream import run_mock_upstream

    problem = _listen_problem(args.host, args.port)
    if problem:  # named by its option: the mock has no config
        return _fail(f"mock-upstream: --{problem[0]}: {problem[1]}")
    run_mock_upstream(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
