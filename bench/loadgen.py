"""Closed-loop HTTP/1.1 load: wrk when installed, else the asyncio client in this file.

`run_load(...)` drives one phase from a separate process and returns a `LoadResult` (completed
responses, errors, latency percentiles over whole responses — a stream counts when its last
byte arrived — and the load generator's own CPU). Run as a script, this file is the fallback
client: one keep-alive connection per slot, each sending the same pre-encoded request back to
back; at the deadline no new request starts and in-flight ones are allowed to finish, so every
counted response is one the proxy completed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

_MARK = "BENCHJSON "
# wrk counts every complete response in summary.requests and non-2xx/3xx in errors.status.
_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'MARK{"duration_s":%f,"responses":%d,"ok":%d,"errors":%d,'
    .. '"p50_ms":%f,"p90_ms":%f,"p99_ms":%f,"mean_ms":%f}\\n',
    summary.duration / 1e6, summary.requests, summary.requests - e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.mean / 1e3))
end
"""


@dataclass(frozen=True, slots=True)
class LoadResult:
    tool: str
    connections: int
    duration_s: float
    responses: int  # complete responses of any status
    ok: int  # 2xx responses
    errors: int  # connect/read/write errors and timeouts
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    cpu_seconds: float  # the load generator's own CPU time

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"rps": round(self.rps, 1)}


def choose_tool(preference: str = "auto") -> str:
    if preference == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if preference == "wrk" and not shutil.which("wrk"):
        raise SystemExit("bench: --loadgen wrk asked for, but wrk is not installed")
    return preference


def run_load(
    tool: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    duration: float,
    cpus: set[int] | None = None,
) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="airuns-load-") as tmp:
        if tool == "wrk":
            script = Path(tmp) / "request.lua"
            script.write_text(_wrk_script(body, headers))
            seconds = max(1, round(duration))  # wrk takes whole seconds only
            argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
            argv += ["-s", str(script), url]
        else:
            request = Path(tmp) / "request.bin"
            request.write_bytes(_encode_request(url, body, headers))
            argv = [sys.executable, __file__, url, str(request), str(connections), str(duration)]
        raw, cpu = _run_measured(argv, cpus)
    for line in raw.splitlines():
        if line.startswith(_MARK):
            stats = json.loads(line[len(_MARK) :])
            break
    else:
        raise RuntimeError(f"load generator printed no result:\n{raw[-2000:]}")
    return LoadResult(tool=tool, connections=connections, cpu_seconds=cpu, **stats)


def _run_measured(argv: list[str], cpus: set[int] | None) -> tuple[str, float]:
    """Run to completion; return stdout and the child's user+system CPU seconds."""
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=preexec)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {proc.returncode}:\n{text[-2000:]}")
    return text, usage.ru_utime + usage.ru_stime


def _lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{b}" for b in data) + '"'


def _wrk_script(body: bytes, headers: dict[str, str]) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
    for name, value in headers.items():
        lines.append(f"wrk.headers[{_lua_string(name.encode())}] = {_lua_string(value.encode())}")
    # wrk counts every complete response in summary.requests and non-2xx/3xx in errors.status.
    lines.append(_WRK_DONE.replace("MARK", _MARK))
    return "\n".join(lines)


def _encode_request(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"host: {parts.netloc}",
        f"content-length: {len(body)}",
    ]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- the fallback client ---------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """Sends `request`, reads one whole response (content-length or chunked), repeats."""

    def __init__(self, request: bytes, deadline: float, stats: dict, done: asyncio.Future):
        self.request, self.deadline, self.stats, self.done = request, deadline, stats, done
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.body_at = -1  # buffer offset of the body, once the head is in
        self.length = -1  # content-length, or -1 for chunked
        self.chunk_left = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is not None or self.body_at >= 0 or self.buffer:
                self.stats["errors"] += 1
            self.done.set_result(None)

    def _send(self) -> None:
        self.started = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._response_complete():
            elapsed = time.perf_counter() - self.started
            self.stats["latencies"].append(elapsed)
            self.stats["responses"] += 1
            self.stats["ok"] += 200 <= self.status < 300
            self._reset()
            if time.perf_counter() >= self.deadline:
                self.transport.close()
                if not self.done.done():
                    self.done.set_result(None)
                return
            self._send()

    def _response_complete(self) -> bool:
        buffer = self.buffer
        if self.body_at < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(buffer[:end]).split(b"\r\n")
            self.status = int(head[0].split(b" ", 2)[1])
            self.length = -1
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    self.length = int(value)
            del buffer[: end + 4]
            self.body_at = 0
        if self.length >= 0:
            if len(buffer) < self.length:
                return False
            del buffer[: self.length]
            return True
        return self._chunked_complete()

    def _chunked_complete(self) -> bool:
        buffer = self.buffer
        while True:
            if self.chunk_left:
                if len(buffer) < self.chunk_left + 2:
                    return False
                del buffer[: self.chunk_left + 2]
                self.chunk_left = 0
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                return False
            size = int(bytes(buffer[:line_end]).split(b";")[0], 16)
            if size == 0:
                if len(buffer) < line_end + 4:
                    return False
                del buffer[: line_end + 4]  # the size line and the empty trailer line
                return True
            del buffer[: line_end + 2]
            self.chunk_left = size


async def _drive(url: str, request: bytes, connections: int, duration: float) -> dict:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    stats: dict = {"responses": 0, "ok": 0, "errors": 0, "latencies": []}
    begin = time.perf_counter()
    deadline = begin + duration
    dones = []
    for _ in range(connections):
        done = loop.create_future()
        dones.append(done)
        await loop.create_connection(
            lambda d=done: _Connection(request, deadline, stats, d), parts.hostname, parts.port
        )
    await asyncio.wait_for(asyncio.gather(*dones), duration + 30)
    elapsed = time.perf_counter() - begin
    latencies = sorted(stats.pop("latencies"))

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1e3
            if latencies
            else 0.0
        )

    mean = sum(latencies) / len(latencies) * 1e3 if latencies else 0.0
    return stats | {
        "duration_s": elapsed,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": mean,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="fallback closed-loop HTTP/1.1 load generator")
    parser.add_argument("url")
    parser.add_argument("request_file", help="a whole encoded HTTP request")
    parser.add_argument("connections", type=int)
    parser.add_argument("duration", type=float)
    args = parser.parse_args()
    request = Path(args.request_file).read_bytes()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        stats = runner.run(_drive(args.url, request, args.connections, args.duration))
    print(_MARK + json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
