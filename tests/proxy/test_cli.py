"""`airuns` as a user meets it: `--version`, `--help`, and every mistake a user can make (an
option, a config key, an environment variable, a database URL) ends in one line on stderr and
exit status 2; a database that merely does not answer is served through."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from proxy.cli import airuns_version, build_parser, main
from tests.conftest import _server_url
from tests.support.servers import free_port

CLI = [sys.executable, "-m", "proxy.cli"]


def airuns(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRUNS_")}
    return subprocess.run(
        [*CLI, *argv],
        capture_output=True,
        text=True,
        env={**environ, "PYTHONPATH": os.getcwd(), **(env or {})},
        cwd=cwd,
        timeout=60,
    )


def one_line(text: str) -> str:
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text.strip()


def config_file(tmp_path: Path, url: str | None = None, extra: str = "") -> str:
    url = url or f"sqlite+aiosqlite:///{tmp_path / 'airuns.db'}"
    spool = tmp_path / "spool"
    path = tmp_path / "config.yaml"
    path.write_text(
        f'database: {{url: "{url}"}}\n'
        'providers: {mock: {base_url: "http://127.0.0.1:9/v1"}}\n'
        "default_provider: mock\n"
        f'recording: {{spool_dir: "{spool}"}}\n{extra}'
    )
    return str(path)


# -- version and help ---------------------------------------------------------------------------


def test_version_prints_the_package_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"airuns {airuns_version()}\n"
    assert airuns_version()[0].isdigit()


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from parsers(child)


def test_every_option_of_every_command_has_help() -> None:
    for parser in parsers(build_parser()):
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{parser.prog} {action.option_strings or action.dest}"


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["serve"], ["--port PORT", "(default: server.port, 8080)", "$AIRUNS_CONFIG"]),
        (["mock-upstream"], ["(default: 9000)", "(default: 127.0.0.1)"]),
        (["runs", "list"], ["(default: active)", "(default: recent)", "(default: 20)"]),
        (["runs", "export"], ["(default: json)", "(default: stdout)"]),
    ],
)
def test_help_shows_each_default(argv: list[str], shown: list[str], capsys) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in shown:
        assert text in out


def test_top_level_help_lists_the_commands_without_developer_notes(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "migrate", "mock-upstream", "runs", "--version"):
        assert command in out
    for note in ("argument parsing", "import", "the package that does the work"):
        assert note not in out


# -- options ------------------------------------------------------------------------------------


HOSTILE_PORTS = ["99999", "0", "-1", "abc", "", "1e3", "8_080", " 80", "８０", "\x00", "9" * 500]


@pytest.mark.parametrize("value", HOSTILE_PORTS)
@pytest.mark.parametrize("command", ["serve", "mock-upstream"])
def test_a_bad_port_option_is_one_line_and_exit_2(command: str, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, f"--port={value}"])
    assert exit_info.value.code == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith(f"airuns {command}: error: argument --port: ")
    assert len(err) < 200


@pytest.mark.parametrize("value", ["0", "-3", "two", "1.5", "\x00", "257", "9" * 30])
def test_a_bad_worker_count_is_one_line_and_exit_2(value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", f"--workers={value}"])
    assert exit_info.value.code == 2
    assert "argument --workers: " in one_line(capsys.readouterr().err)


def test_an_unknown_option_is_one_line_and_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--prot", "1"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --prot 1" in one_line(capsys.readouterr().err)


# -- configuration errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "env", "expected"),
    [
        ("serer: {port: 1}\n", {}, "configuration error: serer: unknown key"),
        (
            "",
            {"AIRUNS_SERVER_PROT": "1"},
            "configuration error: AIRUNS_SERVER_PROT: unknown setting in the environment"
            " (did you mean AIRUNS_SERVER_PORT?)",
        ),
        ("", {"AIRUNS_SERVER_PORT": "99999"}, "server.port: must be between 1 and 65535"),
        ("", {"AIRUNS_SERVER_PORT": "-1"}, "server.port: expected a non-negative number"),
        ("", {"AIRUNS_SERVER_PORT": "80 80"}, "server.port: expected a non-negative number"),
        ("", {"AIRUNS_SERVER_PORT": "9" * 1000}, "server.port: expected a non-negative number"),
        ("", {"AIRUNS_LOGGING_FORMAT": "xml"}, "logging.format: must be one of auto, json, text"),
        ("", {"AIRUNS_LOGGING_FORMAT": "\x01"}, "logging.format: control characters are not"),
        ("", {"AIRUNS_LOGGING_LEVEL": "loud"}, "logging.level: must be one of"),
        ("logging: {format: [json]}\n", {}, "logging.format: expected a string"),
        ("", {"AIRUNS_SERVER_WORKERS": "1000000"}, "server.workers: must be between 1 and 256"),
        ('server: {host: "127.0.0.1\\0"}\n', {}, "server.host: control characters are not"),
        ("", {"AIRUNS_ADMIN_API_KEY": "k\x01"}, "admin.api_key: control characters are not"),
        ("x: &a [*a]\n", {}, "config.yaml:5:8: invalid YAML: aliases (*name) are not allowed"),
        ("server: {port: {1\n", {}, "config.yaml:6:1: invalid YAML: expected ',' or '}'"),
        ("a: b: c\n", {}, "config.yaml:5:5: invalid YAML: mapping values are not allowed"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_configuration_error_is_one_line_and_exit_2(
    command: str, extra: str, env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    result = airuns(command, "--config", config_file(tmp_path, extra=extra), env=env)

    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("airuns: configuration error: ") and expected in line
    assert len(line) < 300
    assert not (tmp_path / "airuns.db").exists()  # nothing was started


def test_a_missing_config_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = airuns("serve", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"airuns: configuration error: config file {tmp_path / 'nope.yaml'} not found"
    )


def test_the_environment_names_the_config_file(tmp_path: Path) -> None:
    path = config_file(tmp_path, extra="nope: 1\n")
    result = airuns("migrate", env={"AIRUNS_CONFIG": path})
    assert (result.returncode, one_line(result.stderr)) == (
        2,
        "airuns: configuration error: nope: unknown key",
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("notaurl", "database.url: not a database URL: 'notaurl'"),
        ("mysql://root@127.0.0.1/airuns", "database.url: 'mysql' databases are not supported"),
        (
            "postgresql+psycopg2://u@127.0.0.1/db",
            "database.url: driver 'psycopg2' is not supported; use postgresql+asyncpg",
        ),
        ("sqlite+aiosqlite:///{tmp}/missing/airuns.db", "database.url: folder {tmp}/missing does"),
        ("sqlite+aiosqlite:///{tmp}", "database.url: {tmp} is a folder, not a SQLite file"),
        ("sqlite+aiosqlite:///{tmp}/junk.db", "database.url: SQLite file {tmp}/junk.db: file is"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_database_that_cannot_work_stops_the_start_in_one_line(
    command: str, url: str, expected: str, tmp_path: Path
) -> None:
    (tmp_path / "junk.db").write_bytes(b"not a database, " * 100)
    url, expected = url.format(tmp=tmp_path), expected.format(tmp=tmp_path)
    result = airuns(command, "--config", config_file(tmp_path, url=url))

    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("airuns: database error: ") and expected in line


def missing_postgres_database() -> str:
    return (
        make_url(_server_url())
        .set(drivername="postgresql+asyncpg", database=f"airuns_missing_{uuid.uuid4().hex[:8]}")
        .render_as_string(hide_password=False)
    )


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_postgres_database_that_does_not_exist_stops_the_start(
    command: str, tmp_path: Path, postgres_server
) -> None:
    url = missing_postgres_database()
    result = airuns(command, "--config", config_file(tmp_path, url=url))

    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("airuns: database error: database.url: database ")
    assert "does not exist" in line


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_password_with_an_unencoded_at_sign_is_refused_and_never_shown(
    command: str, tmp_path: Path
) -> None:
    url = "postgresql+asyncpg://root:verylong@secret@127.0.0.1:5432/airuns"
    result = airuns(command, "--config", config_file(tmp_path, url=url))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "URL-encode the password's '@' as %40" in line and "secret" not in line


def test_kubernetes_service_links_are_not_taken_for_misspelt_settings(tmp_path: Path) -> None:
    """A Service named `airuns` puts these in every pod of its namespace."""
    links = {
        "AIRUNS_PORT": "tcp://10.0.0.1:8080",
        "AIRUNS_SERVICE_HOST": "10.0.0.1",
        "AIRUNS_SERVICE_PORT": "8080",
        "AIRUNS_PORT_8080_TCP": "tcp://10.0.0.1:8080",
        "AIRUNS_PORT_8080_TCP_ADDR": "10.0.0.1",
        "AIRUNS_PORT_8080_TCP_PROTO": "tcp",
    }
    result = airuns("migrate", "--config", config_file(tmp_path), env=links)
    assert result.returncode == 0, result.stderr


def test_a_spool_folder_that_cannot_be_written_stops_serve_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {"AIRUNS_RECORDING_SPOOL_DIR": str(blocker / "spool")}
    result = airuns("serve", "--config", config_file(tmp_path), env=env)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("airuns: configuration error: recording.spool_dir: cannot write to")


def test_ctrl_c_while_the_database_does_not_answer_is_one_line_and_exit_130(
    tmp_path: Path,
) -> None:
    with socket.socket() as silent:  # accepts connections and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql+asyncpg://airuns@127.0.0.1:{silent.getsockname()[1]}/airuns"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRUNS_")}
        process = subprocess.Popen(
            [*CLI, "serve", "--config", config_file(tmp_path, url=url), "--port", str(free_port())],
            stderr=subprocess.PIPE,
            text=True,
            env={**environ, "PYTHONPATH": os.getcwd()},
        )
        silent.settimeout(30)
        connection, _ = silent.accept()  # serve is migrating, waiting on the database
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        connection.close()
    assert (process.returncode, one_line(err)) == (130, "airuns: interrupted")


def test_migrate_of_an_unreachable_database_is_one_line_masked_and_exit_1(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://airuns:s3cret@127.0.0.1:{free_port()}/airuns"
    result = airuns("migrate", "--config", config_file(tmp_path, url=url))

    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("airuns: database unreachable: postgresql+asyncpg://airuns:***@")
    assert "s3cret" not in line and "connection refused" in line


# -- serve --------------------------------------------------------------------------------------


class Serving:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process, self.port = process, port
        self.lines: list[str] = []

    def read_until(self, text: str, timeout: float = 30) -> str:
        """stderr lines until one containing `text` (returned), failing on exit or timeout."""
        deadline = time.monotonic() + timeout
        assert self.process.stderr is not None
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                raise AssertionError(f"serve exited: {''.join(self.lines)}")
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} within {timeout}s: {''.join(self.lines)}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        _, rest = self.process.communicate(timeout=30)
        self.lines += rest.splitlines(keepends=True)
        return self.process.returncode


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    started: list[Serving] = []

    def start(config: str, env: dict[str, str]) -> Serving:
        port = free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRUNS_")}
        process = subprocess.Popen(
            [*CLI, "serve", "--config", config, "--port", str(port)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**environ, "PYTHONPATH": os.getcwd(), "PYTHONUNBUFFERED": "1", **env},
        )
        started.append(Serving(process, port))
        return started[-1]

    yield start
    for serving in started:
        if serving.process.poll() is None:
            serving.process.kill()
            serving.process.wait()


def test_serve_prints_one_start_line_with_what_a_newcomer_checks(tmp_path: Path, serve) -> None:
    config = config_file(tmp_path, extra="admin: {api_key: sk-admin}\n")
    serving = serve(config, {"AIRUNS_LOGGING_FORMAT": "json"})

    line = serving.read_until("listening on")
    assert httpx.get(f"http://127.0.0.1:{serving.port}/healthz").status_code == 200
    assert serving.stop() == 0

    start = json.loads(line)
    assert (
        start["event"] == f"airuns {airuns_version()} listening on http://127.0.0.1:{serving.port}"
    )
    assert start["database"] == f"sqlite+aiosqlite:///{tmp_path / 'airuns.db'}"
    assert start["providers"] == "mock (http://127.0.0.1:9/v1)"
    assert (start["admin_api"], start["ui"]) == ("on", "off (not in this version)")
    assert [entry["event"] for entry in map(json.loads, serving.lines)].count(start["event"]) == 1
    assert "sk-admin" not in "".join(serving.lines)


def test_healthcheck_asks_the_server_the_config_describes(tmp_path: Path, serve) -> None:
    serving = serve(config_file(tmp_path), {})
    serving.read_until("listening on")
    checked = tmp_path / "checked"
    checked.mkdir()
    # What a config mounted over the image's says: another port, on every address.
    extra = f"server: {{host: 0.0.0.0, port: {serving.port}}}\n"
    config = config_file(checked, extra=extra)
    assert (ready := airuns("healthcheck", "--config", config)).returncode == 0, ready.stderr
    assert serving.stop() == 0
    gone = airuns("healthcheck", "--config", config)
    assert gone.returncode == 1
    line = one_line(gone.stderr)
    assert line.startswith(f"airuns: not ready: http://127.0.0.1:{serving.port}/readyz: ")


def test_healthcheck_says_not_ready_while_the_database_does_not_answer(
    tmp_path: Path, serve
) -> None:
    url = f"postgresql+asyncpg://airuns@127.0.0.1:{free_port()}/airuns"
    serving = serve(config_file(tmp_path, url=url), {})
    serving.read_until("listening on")
    extra = f"server: {{port: {serving.port}}}\n"
    result = airuns("healthcheck", "--config", config_file(tmp_path, url=url, extra=extra))
    assert result.returncode == 1
    assert "/readyz: 503 " in one_line(result.stderr)
    assert serving.stop() == 0


def test_an_unreachable_database_is_served_through_with_its_password_masked(
    tmp_path: Path, serve
) -> None:
    url = f"postgresql+asyncpg://airuns:s3cret@127.0.0.1:{free_port()}/airuns"
    serving = serve(config_file(tmp_path, url=url), {"AIRUNS_LOGGING_FORMAT": "json"})

    start = json.loads(serving.read_until("listening on"))
    assert httpx.get(f"http://127.0.0.1:{serving.port}/healthz").status_code == 200
    assert serving.stop() == 0

    assert start["database"].startswith("postgresql+asyncpg://airuns:***@127.0.0.1:")
    assert start["admin_api"] == "off (admin.api_key is empty)"
    entries = [json.loads(line) for line in serving.lines]  # every line is JSON: one format
    warning = next(e for e in entries if e["event"].startswith("database unreachable at start"))
    assert warning["level"] == "warning" and "connection refused" in warning["error"]
    assert "s3cret" not in "".join(serving.lines)


def test_text_format_renders_library_lines_too(tmp_path: Path, serve) -> None:
    serving = serve(config_file(tmp_path), {"AIRUNS_LOGGING_FORMAT": "text"})

    migrated = serving.read_until("database migrated from revision")  # persistence's stdlib log
    start = serving.read_until("listening on")
    assert serving.stop() == 0

    for line in (migrated, start):
        assert not line.startswith("{") and "[info" in line
    assert "providers='mock (http://127.0.0.1:9/v1)'" in start
    assert not any(line.startswith("{") for line in serving.lines)


def test_a_busy_port_stops_serve_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = airuns("serve", "--config", config_file(tmp_path), "--port", str(port))
        mock = airuns("mock-upstream", "--port", str(port))
        from_config = airuns(
            "serve", "--config", config_file(tmp_path), env={"AIRUNS_SERVER_PORT": str(port)}
        )

    assert result.returncode == mock.returncode == from_config.returncode == 2
    assert one_line(result.stderr) == (
        f"airuns: configuration error: --port: cannot listen on 127.0.0.1:{port}"
        " (address already in use)"
    )
    assert one_line(mock.stderr).startswith("airuns: mock-upstream: --port: cannot listen on")
    assert one_line(from_config.stderr).startswith("airuns: configuration error: server.port: ")
    assert not (tmp_path / "airuns.db").exists()  # checked before migrating


@pytest.mark.parametrize("host", ["nohost.invalid", "a\x01b", "256.1.1.1"])
def test_a_host_that_cannot_be_listened_on_stops_serve_in_one_line(
    host: str, tmp_path: Path
) -> None:
    result = airuns("serve", "--config", config_file(tmp_path), "--host", host)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith("airuns: configuration error: --host: cannot listen")
