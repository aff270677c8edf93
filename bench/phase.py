"""One measured phase: warm up, snapshot CPU, drive load, wait for the records, snapshot again.

CPU per request is the measured process tree's utime+stime over the phase divided by the 2xx
responses the load generator counted. The second snapshot is taken after the proxy's writer
has caught up (`TaskCounts.settle`), so the cost of writing a phase's records lands in it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from loadgen import LoadResult, run_load
from procstats import sample_tree
from records import RecordCheck, TaskCounts, check
from servers import Process

BASE_HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
_MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Summarize the overhead benchmark in one line."},
]
_CHAT = {"model": "gpt-4o-mini", "messages": _MESSAGES, "temperature": 0.2}


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    body: dict
    headers: dict[str, str] = field(default_factory=dict)


SCENARIOS = (
    Scenario("non-stream", _CHAT),
    Scenario("stream-20", _CHAT | {"stream": True}, {"x-mock-chunks": "20"}),
    Scenario(
        "paced-20x2ms",
        _CHAT | {"stream": True},
        {"x-mock-chunks": "20", "x-mock-chunk-delay-ms": "2"},
    ),
)
SCENARIO = {s.name: s for s in SCENARIOS}


@dataclass(slots=True)
class Row:
    section: str
    target: str  # "fake" (called directly) or the server's name
    scenario: str
    connections: int
    tracking: str  # "on" | "off" | "-" (direct)
    workers: int
    load: LoadResult
    cpu_us: float  # the target's CPU per 2xx response
    upstream_cpu_us: float | None  # the fake's, when the target is the proxy
    records: RecordCheck | None = None
    rss_mb: float = 0.0  # the target's resident memory after the phase
    writer: dict | None = None  # the proxy's /readyz right after the load (backlog etc.)

    def as_dict(self) -> dict:
        return {
            "section": self.section,
            "target": self.target,
            "scenario": self.scenario,
            "connections": self.connections,
            "tracking": self.tracking,
            "workers": self.workers,
            "cpu_us_per_req": round(self.cpu_us, 1),
            "upstream_cpu_us_per_req": _round(self.upstream_cpu_us),
            "loadgen_cpu_us_per_req": round(self.load.cpu_seconds / max(1, self.load.ok) * 1e6, 1),
            "load": self.load.as_dict(),
            "records": self.records.as_dict() if self.records else None,
            "rss_mb": self.rss_mb,
            "writer_after_load": self.writer,
        }


@dataclass(slots=True)
class Bench:
    tool: str
    duration: float
    warmup: float
    upstream: Process
    loadgen_cpus: set[int] | None
    logdir: Path
    warm_once: bool = False  # warm up a server once per scenario, not before every phase
    _warmed: set = field(default_factory=set)

    def measure(
        self,
        section: str,
        scenario: Scenario,
        connections: int,
        server: Process | None = None,
        *,
        track: bool = True,
        workers: int = 1,
        tasks: TaskCounts | None = None,
    ) -> Row:
        """Measure the proxy `server`, or the fake upstream itself when `server` is None."""
        target = server or self.upstream
        url = f"http://127.0.0.1:{target.port}/v1/chat/completions"
        headers = BASE_HEADERS | scenario.headers | ({} if track else {"x-run-track": "off"})
        body = _encode(scenario.body)
        key = (target.pid, scenario.name)
        if self.warmup and not (self.warm_once and key in self._warmed):
            self._load(url, body, headers, connections, self.warmup)
            self._warmed.add(key)
        before = tasks.settle() if tasks else None
        cpu0, up0 = sample_tree(target.pid), sample_tree(self.upstream.pid)
        load = self._load(url, body, headers, connections, self.duration)
        writer = _ready_report(target.port) if tasks else None
        after = tasks.settle() if tasks else None
        cpu1, up1 = sample_tree(target.pid), sample_tree(self.upstream.pid)
        per_ok = 1e6 / max(1, load.ok)
        records = None
        if tasks is not None:
            slack = connections if self.tool == "wrk" else 0
            records = check(before, after, load.ok if track else 0, slack if track else 0)
        return Row(
            section=section,
            target=server.name if server else "fake",
            scenario=scenario.name,
            connections=connections,
            tracking=("on" if track else "off") if server else "-",
            workers=workers,
            load=load,
            cpu_us=(cpu1.cpu_seconds - cpu0.cpu_seconds) * per_ok,
            upstream_cpu_us=(up1.cpu_seconds - up0.cpu_seconds) * per_ok if server else None,
            records=records,
            rss_mb=round(cpu1.rss_bytes / 2**20, 1),
            writer=writer,
        )

    def _load(self, url: str, body: bytes, headers: dict, connections: int, seconds: float):
        return run_load(self.tool, url, body, headers, connections, seconds, self.loadgen_cpus)


def _ready_report(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return json.loads(response.read())
    except (OSError, ValueError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            return json.loads(exc.read() or b"null")
        return None


def _encode(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
