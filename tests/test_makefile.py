"""`make run`: the fake provider and the proxy agree on any PORT/MOCK_PORT, and a port that
cannot be used stops it in one line before anything starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent  # the venv running the tests: nothing to install

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or not (VENV / "bin" / "airuns").exists(),
    reason="needs make and the airuns script beside this Python",
)


def make_run(tmp_path: Path, *variables: str, **popen: object) -> subprocess.Popen:
    """`make run` in the project, on this venv (`-o` keeps make from reinstalling it), with the
    database and spool in `tmp_path` so the checkout is left as it was."""
    command = ["make", "--no-print-directory", "-C", str(ROOT), "-o", f"{VENV}/.installed"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRUNS_", "MAKE"))}
    env |= {
        "AIRUNS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'airuns.db'}",
        "AIRUNS_RECORDING_SPOOL_DIR": str(tmp_path / "spool"),
        "AIRUNS_LOGGING_FORMAT": "json",
    }
    return subprocess.Popen(
        [*command, "run", f"VENV={VENV}", *variables],
        env=env,
        text=True,
        start_new_session=True,  # one process group: make, the mock and airuns
        **popen,  # type: ignore[arg-type]
    )


def refusal(tmp_path: Path, *variables: str) -> tuple[int, str]:
    process = make_run(tmp_path, *variables, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = process.communicate(timeout=60)
    return process.returncode, out


def can_bind(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("busy", ["PORT", "MOCK_PORT"])
def test_a_busy_port_stops_make_run_in_one_line(busy: str, busy_port: int, tmp_path: Path) -> None:
    other = free_port()
    ports = {"PORT": other, "MOCK_PORT": other} | {busy: busy_port}

    code, out = refusal(tmp_path, *(f"{name}={port}" for name, port in ports.items()))

    assert code != 0
    assert out.count("\n") == 1 and out.startswith("Makefile:"), out
    assert f"make run: {busy}={busy_port} cannot be used (address already in use)" in out
    assert can_bind(other)  # nothing was started on the other port
    assert not (tmp_path / "airuns.db").exists()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (["PORT=99999"], "make run: PORT=99999 is not a port (1-65535)"),
        (["MOCK_PORT=0"], "make run: MOCK_PORT=0 is not a port (1-65535)"),
        (["PORT=-1"], "make run: PORT=-1 is not a port (1-65535)"),
        (["PORT=abc"], "make run: PORT=abc is not a port (1-65535)"),
        (["PORT=８０８０"], "make run: PORT=８０８０ is not a port (1-65535)"),
        (["PORT=8081", "MOCK_PORT=8081"], "make run: PORT and MOCK_PORT must differ"),
        (["PORT=1'; touch pwned; '"], "make run: PORT=1'; touch pwned; ' is not a port"),
    ],
)
def test_a_bad_port_stops_make_run_in_one_line(
    variables: list[str], message: str, tmp_path: Path
) -> None:
    code, out = refusal(tmp_path, *variables)

    assert code != 0
    assert out.count("\n") == 1 and message in out, out
    assert not (ROOT / "pwned").exists() and not (tmp_path / "airuns.db").exists()


def test_make_run_points_the_mock_provider_at_mock_port(tmp_path: Path) -> None:
    port, mock_port = free_port(), free_port()
    log = (tmp_path / "make.log").open("w")
    process = make_run(tmp_path, f"PORT={port}", f"MOCK_PORT={mock_port}", stdout=log, stderr=log)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process, timeout=60)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "mock/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        requests = httpx.get(f"http://127.0.0.1:{mock_port}/_mock/requests").json()["data"]
        assert len(requests) == 1  # it reached the mock on MOCK_PORT
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    lines = (tmp_path / "make.log").read_text().splitlines()
    start = next(json.loads(line) for line in lines if '"event":"airuns ' in line)
    assert f"mock (http://127.0.0.1:{mock_port}/v1)" in start["providers"]
    assert can_bind(port) and can_bind(mock_port)  # both stopped with make
