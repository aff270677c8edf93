"""Proxy overhead benchmark: `make bench` (or `python bench/overhead.py [--quick]`).

Starts a fake upstream, `airuns serve` with recording on (SQLite; Postgres too when one
answers), and a load generator in its own process (wrk when installed, else bench/loadgen.py).
For non-streaming chat, a 20-chunk stream and a paced stream (2 ms between chunks) it measures
req/s at 64 connections, p50/p99 latency at 8 connections against calling the fake directly,
the proxy's CPU µs per request (utime+stime of its process tree from /proc), RSS before and
after, recording on vs `X-Run-Track: off`, the log level's share, and 1 vs 2 workers.
After each recorded phase it checks the database holds a task for every response.

On a machine with 2+ CPUs the single-worker proxy is pinned to CPU 0 and the fake and the load
generator to the others, so they do not steal the proxy's core (`--no-pin` turns this off);
the workers comparison runs unpinned. `--servers` compares ASGI servers instead: uvicorn and
granian by default, or a list such as `--servers uvicorn,edge,h11` (uvicorn's HTTP protocols:
stock httptools, airuns' edge protocol, h11 with a head-size limit; docs/server-choice.md).
Prints tables and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import choose_tool  # noqa: E402
from phase import SCENARIO, SCENARIOS, Bench, Row  # noqa: E402
from procstats import sample_tree, set_affinity  # noqa: E402
from records import TaskCounts  # noqa: E402
from report import format_medians, format_rows, format_verdicts, markdown, verdicts  # noqa: E402
from servers import (  # noqa: E402
    REPO,
    SERVERS,
    Process,
    granian_available,
    start_airuns,
    start_asgi_server,
    start_passthrough,
    start_upstream,
    write_config,
)

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("direct", "floor", "sqlite", "postgres", "log", "workers")
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/airuns_bench"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.duration, args.warmup = min(args.duration, 1.0), min(args.warmup, 1.0)
    run = Run(args)
    try:
        run.execute()
    finally:
        run.close()
    return 0 if run.records_ok and not run.failures else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a ~1-minute smoke run: 1 s phases, no floor, log-level or Postgres latency rows",
    )
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each phase")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--upstream",
        choices=("fast", "mock"),
        default="fast",
        help="fast: bench/fakeupstream.py (default); mock: `airuns mock-upstream` (aiohttp)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("AIRUNS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help="database for the Postgres rows ('' to skip); dropped and recreated first "
        "when its name contains 'bench'",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every airuns started, e.g. recording.batch_size=100",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp dir (configs, logs, databases)"
    )
    parser.add_argument(
        "--servers",
        nargs="?",
        const="uvicorn,granian",
        metavar="NAMES",
        help="compare ASGI servers (docs/server-choice.md), alternated round by round: "
        f"a comma-separated subset of {','.join(SERVERS)} (default: uvicorn,granian)",
    )
    parser.add_argument(
        "--ab",
        type=Path,
        metavar="DIR",
        help="compare --source (base) with the airuns source tree DIR (change), SQLite",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of --servers or --ab, alternated"
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO,
        help="the airuns source tree to run (default: this checkout), to measure a change",
    )
    return parser


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="airuns-bench-"))
        self.rows: list[Row] = []
        self.servers: list[dict] = []
        self.notes: list[str] = []
        self.failures: list[str] = []
        self.started: list[Process] = []
        cpus = sorted(os.sched_getaffinity(0))
        pin = not args.no_pin and len(cpus) >= 2
        self.proxy_cpus = {cpus[0]} if pin else None
        self.side_cpus = set(cpus[1:]) if pin else None
        self.tool = choose_tool(args.loadgen)
        self.overrides = dict(item.split("=", 1) for item in args.set)
        upstream = self._keep(start_upstream(args.upstream, self.tmp, self.side_cpus))
        self.bench = Bench(
            self.tool, args.duration, args.warmup, upstream, self.side_cpus, self.tmp, args.quick
        )

    @property
    def records_ok(self) -> bool:
        return all(row.records is None or row.records.ok for row in self.rows)

    def _keep(self, process: Process) -> Process:
        self.started.append(process)
        return process

    def close(self) -> None:
        for process in reversed(self.started):
            process.stop()
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def execute(self) -> None:
        print(self._banner(), flush=True)
        wanted = set(self.args.sections.split(","))
        if self.args.servers:
            self._section("servers", self._compare_servers)
            wanted = set()
        if self.args.ab:
            self._section("ab", self._ab)
            wanted = set()
        if "direct" in wanted:
            self._section("direct", self._direct)
        if "floor" in wanted and not self.args.quick:
            self._section("floor", self._floor)
        if "sqlite" in wanted:
            main = self._sqlite_url("main")
            self._section("sqlite", self._proxy, "sqlite", main, off=True, latency=True)
        postgres = self._postgres_url() if "postgres" in wanted else None
        if postgres:
            latency = not self.args.quick
            self._section("postgres", self._proxy, "postgres", postgres, latency=latency)
        if "log" in wanted and not self.args.quick:
            warn = self._sqlite_url("warn")
            self._section("log", self._proxy, "sqlite/log=warning", warn, log_level="warning")
        if "workers" in wanted:
            self._section("workers", self._workers)
        self._finish()

    def _section(self, name: str, measure, *args, **kwargs) -> None:
        """Run one section; a failure is reported and the rest of the run goes on."""
        try:
            measure(*args, **kwargs)
        except (RuntimeError, OSError) as exc:
            self.failures.append(f"section {name} failed: {str(exc)[-1500:]}")
            print(f"  {self.failures[-1]}", flush=True)
            for process in self.started[1:]:  # everything but the upstream
                process.stop()
            del self.started[1:]

    # -- sections ------------------------------------------------------------------------------
    def _direct(self) -> None:
        for scenario in SCENARIOS:
            for connections in (64, 8):
                self._add(self.bench.measure("direct", scenario, connections))

    def _floor(self) -> None:
        """A bare aiohttp passthrough on the same server: what any Python proxy here pays."""
        server = self._keep(
            start_passthrough(self.bench.upstream.port, self.tmp, cpus=self.proxy_cpus)
        )
        rss_before = sample_tree(server.pid).rss_bytes
        for scenario in SCENARIOS:
            row = self.bench.measure("floor", scenario, 64, server)
            row.tracking = "-"
            self._add(row)
        self._server_done("floor", server, rss_before)

    def _proxy(
        self,
        section: str,
        database_url: str,
        *,
        off: bool = False,
        latency: bool = False,
        log_level: str = "info",
        source: Path | None = None,
    ) -> None:
        config = write_config(
            self.tmp / f"{section.replace('/', '-')}.yaml",
            self.bench.upstream.port,
            database_url,
            log_level,
            self.overrides,
        )
        server = self._keep(
            start_airuns(
                config, "airuns", self.tmp, cpus=self.proxy_cpus, source=source or self.args.source
            )
        )
        tasks = TaskCounts(database_url)
        rss_before = sample_tree(server.pid).rss_bytes
        try:
            for scenario in SCENARIOS:
                self._add(self.bench.measure(section, scenario, 64, server, tasks=tasks))
                if latency:
                    self._add(self.bench.measure(section, scenario, 8, server, tasks=tasks))
                if off:
                    row = self.bench.measure(
                        section, scenario, 64, server, track=False, tasks=tasks
                    )
                    self._add(row)
        finally:
            tasks.close()
        self._server_done(section, server, rss_before)

    def _workers(self) -> None:
        """Scaling: 1 and 2 workers, nothing pinned (the proxy may use every core)."""
        set_affinity(self.bench.upstream.pid, None)
        self.bench.loadgen_cpus = None
        scenarios = [SCENARIO["non-stream"]] + ([] if self.args.quick else [SCENARIO["stream-20"]])
        for workers in (1, 2):
            section = f"workers={workers}"
            url = self._sqlite_url(f"workers{workers}")
            config = write_config(
                self.tmp / f"w{workers}.yaml", self.bench.upstream.port, url, "info", self.overrides
            )
            server = self._keep(
                start_airuns(
                    config, f"airuns-w{workers}", self.tmp, workers=workers, source=self.args.source
                )
            )
            tasks = TaskCounts(url)
            rss_before = sample_tree(server.pid).rss_bytes
            try:
                for scenario in scenarios:
                    row = self.bench.measure(
                        section, scenario, 64, server, workers=workers, tasks=tasks
                    )
                    self._add(row)
            finally:
                tasks.close()
            self._server_done(section, server, rss_before)
        set_affinity(self.bench.upstream.pid, self.side_cpus)
        self.bench.loadgen_cpus = self.side_cpus

    def _ab(self) -> None:
        """This source tree (base) against `--ab DIR` (change), alternated round by round."""
        for round_ in range(1, self.args.rounds + 1):
            for label, source in (("base", self.args.source), ("change", self.args.ab)):
                url = self._sqlite_url(f"{label}-{round_}")
                self._proxy(f"{label}#{round_}", url, latency=True, source=source)

    def _compare_servers(self) -> None:
        """ASGI servers (or uvicorn protocols) with the same app factory, alternated rounds;
        the first one named is the reference of the CPU ratios."""
        names = self.args.servers.split(",")
        if unknown := set(names) - set(SERVERS):
            raise SystemExit(f"bench: unknown servers {sorted(unknown)}; known: {SERVERS}")
        if "granian" in names and not granian_available():
            raise SystemExit("bench: --servers granian needs granian (pip install granian)")
        self._direct()
        for round_ in range(1, self.args.rounds + 1):
            for server_name in names:
                section = f"{server_name}#{round_}"
                url = self._sqlite_url(section.replace("#", "-"))
                config = write_config(
                    self.tmp / f"{server_name}-{round_}.yaml",
                    self.bench.upstream.port,
                    url,
                    "info",
                    self.overrides,
                )
                server = self._keep(
                    start_asgi_server(
                        server_name,
                        config,
                        server_name,
                        self.tmp,
                        cpus=self.proxy_cpus,
                        source=self.args.source,
                    )
                )
                tasks = TaskCounts(url)
                rss_before = sample_tree(server.pid).rss_bytes
                try:
                    for scenario in (SCENARIO["non-stream"], SCENARIO["stream-20"]):
                        for connections, track in ((64, True), (64, False), (8, True)):
                            row = self.bench.measure(
                                section, scenario, connections, server, track=track, tasks=tasks
                            )
                            self._add(row)
                finally:
                    tasks.close()
                self._server_done(section, server, rss_before)

    # -- helpers -------------------------------------------------------------------------------
    def _add(self, row: Row) -> None:
        self.rows.append(row)
        load = row.load
        records = ""
        if row.records is not None:
            records = " records " + (
                "ok" if row.records.ok else f"MISMATCH {row.records.as_dict()}"
            )
        print(
            f"  {row.section:<18} {row.scenario:<13} c={row.connections:<3} track={row.tracking:<3}"
            f" {load.rps:>8,.0f} req/s  p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms"
            f"  CPU {row.cpu_us:6,.0f} µs/req  RSS {row.rss_mb:5.0f} MB{records}",
            flush=True,
        )

    def _server_done(self, section: str, server: Process, rss_before: int) -> None:
        rss_after = sample_tree(server.pid).rss_bytes
        errors = sum(
            1
            for line in server.log.read_text(errors="replace").splitlines()
            if '"level": "error"' in line or "Traceback" in line
        )
        self.servers.append(
            {
                "section": section,
                "server": server.name,
                "rss_before_mb": round(rss_before / 2**20, 1),
                "rss_after_mb": round(rss_after / 2**20, 1),
                "error_log_lines": errors,
            }
        )
        server.stop()
        self.started.remove(server)

    def _sqlite_url(self, name: str) -> str:
        return f"sqlite+aiosqlite:///{self.tmp / name}.db"

    def _postgres_url(self) -> str | None:
        url = self.args.postgres
        if not url:
            return None
        try:
            _recreate_database(url)
        except Exception as exc:  # no server, no permission: the SQLite rows still stand
            self.notes.append(f"Postgres skipped ({type(exc).__name__}: {exc})")
            print(f"  {self.notes[-1]}", flush=True)
            return None
        return url

    def _banner(self) -> str:
        info = self._machine()
        return (
            f"airuns overhead benchmark at {info['commit']} — {info['cpu']} x{info['cpus']}, "
            f"Python {info['python']}, load: {self.tool}, upstream: {self.args.upstream}, "
            f"{self.args.duration:g}s phases, pinning: {'on' if self.proxy_cpus else 'off'}"
        )

    def _machine(self) -> dict:
        cpu = platform.processor() or "?"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return {
            "cpu": cpu,
            "cpus": len(os.sched_getaffinity(0)),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "loadgen": self.tool,
            "upstream": self.args.upstream,
            "duration_s": self.args.duration,
            "warmup_s": self.args.warmup,
            "pinned": bool(self.proxy_cpus),
            "source": str(self.args.source),
            "commit": _commit(self.args.source),
        }

    def _finish(self) -> None:
        print("\n" + format_rows(self.rows))
        print(
            "\nRSS (MB) before → after: "
            + "; ".join(
                f"{s['section']} {s['rss_before_mb']} → {s['rss_after_mb']}" for s in self.servers
            )
        )
        if self.args.servers or self.args.ab:
            print("\n" + format_medians(self.rows))
        judged = []
        if not self.args.servers and not self.args.ab:
            for section in ("sqlite", "postgres"):
                judged += verdicts(self.rows, section)
            print("\n" + format_verdicts(judged))
        for note in self.notes + self.failures:
            print(note)
        if not self.records_ok:
            print("\nRECORD MISMATCH: the proxy did not record every call; figures are invalid.")
        RESULTS.mkdir(exist_ok=True)
        name = "servers" if self.args.servers else "ab" if self.args.ab else "overhead"
        path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        payload = {
            "machine": self._machine(),
            "rows": [row.as_dict() for row in self.rows],
            "servers": self.servers,
            "targets": [v.as_dict() for v in judged],
            "records_ok": self.records_ok,
            "notes": self.notes,
            "failures": self.failures,
        }
        path.write_text(json.dumps(payload, indent=2))
        path.with_suffix(".md").write_text(markdown(self.rows, judged))
        print(f"\nJSON: {path} (and the tables as Markdown: {path.with_suffix('.md').name})")


def _commit(source: Path) -> str:
    """The source tree's git commit, "+changes" when its code differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        code = ["proxy", "persistence", "pricing"]
        clean = subprocess.run(["git", "-C", str(source), "diff", "--quiet", "HEAD", "--", *code])
        clean = clean.returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head if clean == 0 else head + "+changes"


def _recreate_database(url: str) -> None:
    """Start from an empty database. Only one whose name contains "bench" is dropped;
    any other is created when missing and otherwise used as it is (counts are deltas)."""
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database
    admin = parsed.set(drivername="postgresql", database="postgres")

    async def recreate() -> None:
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False), timeout=3)
        try:
            if "bench" in name:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(recreate())


if __name__ == "__main__":
    sys.exit(main())
