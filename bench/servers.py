"""The processes a benchmark run starts: the fake upstream, airuns, and bare ASGI servers.

Every process gets its own session (so stopping it stops its workers too), an optional CPU
affinity, and a log file in the run's temp directory. Nothing here measures anything.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
ASGI_FACTORY = "proxy.asgi:create_from_environment"
# uvicorn's HTTP protocol per server name: stock httptools, airuns' edge (default
# server_limits), h11 with its only head limit set to the same 64 KiB.
UVICORN_HTTP = {
    "uvicorn": ["--http", "httptools"],
    "edge": ["--http", "proxy.server:EdgeProtocol"],
    "h11": ["--http", "h11", "--h11-max-incomplete-event-size", "65536"],
}
SERVERS = (*UVICORN_HTTP, "granian")


class Process:
    """A started server: its pid (the root of the tree whose CPU is measured) and port."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path, **options) -> None:
        cpus = options.pop("cpus", None)
        source = options.pop("source", REPO)
        env = options.pop("env", os.environ) | {"PYTHONPATH": str(source)}
        self.name, self.port, self.log = name, port, log
        preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                argv,
                cwd=source,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
                **options,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_ready(self, path: str | None, timeout: float = 90.0) -> None:
        """Until the port accepts connections (and `path` answers 200, when given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; log:\n{self.tail()}")
            if _answers(self.port, path):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; log:\n{self.tail()}")

    def tail(self, size: int = 3000) -> str:
        return self.log.read_bytes()[-size:].decode(errors="replace")

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is not None:
            return
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait()


def _answers(port: int, path: str | None) -> bool:
    try:
        if path is None:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_upstream(kind: str, logdir: Path, cpus: set[int] | None) -> Process:
    """`fast`: bench/fakeupstream.py; `mock`: `airuns mock-upstream` (aiohttp)."""
    port = free_port()
    if kind == "fast":
        argv = [sys.executable, str(REPO / "bench" / "fakeupstream.py"), str(port)]
    else:
        argv = [sys.executable, "-m", "proxy.cli", "mock-upstream", "--port", str(port)]
    process = Process(f"upstream-{kind}", argv, port, logdir / f"upstream-{kind}.log", cpus=cpus)
    process.wait_ready(None)
    return process


def write_config(
    path: Path,
    upstream_port: int,
    database_url: str,
    log_level: str = "info",
    overrides: dict[str, str] | None = None,
) -> Path:
    """A config whose only provider is the fake upstream; the spool sits next to the file.
    `overrides` maps dotted keys to values (`{"recording.batch_size": "100"}`)."""
    config: dict = {
        "providers": {"mock": {"base_url": f"http://127.0.0.1:{upstream_port}/v1"}},
        "default_provider": "mock",
        "database": {"url": database_url},
        "recording": {"spool_dir": str(path.parent / "spool")},
        "logging": {"level": log_level},
    }
    for dotted, value in (overrides or {}).items():
        *parents, key = dotted.split(".")
        node = config
        for name in parents:
            node = node.setdefault(name, {})
        node[key] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_airuns(
    config: Path,
    name: str,
    logdir: Path,
    *,
    workers: int = 1,
    cpus: set[int] | None = None,
    source: Path = REPO,
) -> Process:
    """`airuns serve` exactly as a user runs it (migrations, then uvicorn), from the source
    tree `source` (default: this checkout; another one to measure a change side by side)."""
    port = free_port()
    argv = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config)]
    argv += ["--port", str(port), "--workers", str(workers)]
    process = Process(name, argv, port, logdir / f"{name}.log", cpus=cpus, source=source)
    process.wait_ready("/healthz")
    return process


def granian_available() -> bool:
    return _granian() is not None


def _granian() -> str | None:
    local = Path(sys.executable).with_name("granian")
    return str(local) if local.exists() else shutil.which("granian")


def start_asgi_server(
    server: str,
    config: Path,
    name: str,
    logdir: Path,
    *,
    cpus: set[int] | None = None,
    source: Path = REPO,
) -> Process:
    """The app factory under a bare ASGI server, one worker (migrations are run first).
    `server` is one of SERVERS: uvicorn with one of its HTTP protocols, or granian."""
    env = os.environ | {"AIRUNS_CONFIG": str(config), "PYTHONPATH": str(source)}
    subprocess.run(
        [sys.executable, "-m", "proxy.cli", "migrate", "--config", str(config)],
        cwd=source,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    if server in UVICORN_HTTP:
        argv = [sys.executable, "-m", "uvicorn", "--factory", ASGI_FACTORY, "--port", str(port)]
        argv += ["--loop", "uvloop", *UVICORN_HTTP[server], "--lifespan", "on"]
        argv += ["--no-access-log", "--log-level", "warning"]
    elif server == "granian":
        granian = _granian()
        if granian is None:
            raise RuntimeError("granian is not installed (pip install granian)")
        argv = [granian, "--interface", "asgi", "--factory", "--port", str(port)]
        argv += ["--workers", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning"]
        argv += [ASGI_FACTORY]
    else:
        raise ValueError(f"unknown server {server!r}")
    process = Process(name, argv, port, logdir / f"{name}.log", cpus=cpus, env=env, source=source)
    process.wait_ready("/healthz")
    return process


def start_passthrough(upstream_port: int, logdir: Path, *, cpus: set[int] | None = None) -> Process:
    """bench/passthrough.py under uvicorn (uvloop + httptools): the floor airuns is read against."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--factory", "passthrough:create_app"]
    argv += ["--app-dir", str(REPO / "bench"), "--port", str(port), "--loop", "uvloop"]
    argv += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    env = os.environ | {"BENCH_UPSTREAM": f"http://127.0.0.1:{upstream_port}/v1"}
    process = Process("passthrough", argv, port, logdir / "passthrough.log", cpus=cpus, env=env)
    process.wait_ready("/healthz")
    return process
