"""`airuns` command line: argument parsing, then a call into the package that does the work."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from proxy.runs_cli import add_runs_commands
from proxy.settings import Settings, SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except SettingsError as exc:
        print(f"airuns: configuration error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airuns", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the proxy, admin API and UI")
    _config_option(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    _config_option(migrate)
    migrate.set_defaults(run=_migrate)

    mock = commands.add_parser("mock-upstream", help="run the fake OpenAI-compatible provider")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9000)
    mock.set_defaults(run=_mock_upstream)

    add_runs_commands(commands, _config_option)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $AIRUNS_CONFIG or ./config.yaml)")


def load(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, os.environ)


_START_MIGRATION_TIMEOUT = 15.0


def _serve(args: argparse.Namespace) -> int:
    from persistence.migrate import migrate
    from proxy.server import ServerConfig, run_server

    settings = load(args)
    if args.config:
        os.environ["AIRUNS_CONFIG"] = os.path.abspath(args.config)
    try:
        asyncio.run(asyncio.wait_for(migrate(settings.database.url), _START_MIGRATION_TIMEOUT))
    except Exception as error:  # the proxy must serve without its database; records spool
        print(
            f"airuns: database not migrated at start ({type(error).__name__}); serving anyway, "
            "records are kept until it answers",
            file=sys.stderr,
        )
    _stop_signals_exit_cleanly()
    config = ServerConfig(
        "proxy.asgi:create_from_environment",
        limits=settings.server_limits,
        factory=True,
        host=args.host or settings.server.host,
        port=args.port or settings.server.port,
        workers=args.workers or settings.server.workers,
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.shutdown.grace_period),
    )
    run_server(config)
    return 0


def _stop_signals_exit_cleanly() -> None:
    """uvicorn re-raises SIGTERM/SIGINT once its graceful shutdown is done (in-flight calls
    finished, records flushed); that is the stop that was asked for: exit 0, not a signal death."""

    def exit_zero(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, exit_zero)


def _migrate(args: argparse.Namespace) -> int:
    from persistence.migrate import migrate

    settings = load(args)
    asyncio.run(migrate(settings.database.url))
    print("migrations applied", file=sys.stderr)
    return 0


def _mock_upstream(args: argparse.Namespace) -> int:
    from proxy.mock_upstream import run_mock_upstream

    run_mock_upstream(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
