"""Logs and metrics: one structured log line per call, Prometheus counters/histograms.

Nothing here runs per chunk. Log lines carry ids, provider, model, status and timings, never
headers or bodies, so no credential can reach the log.

One format per process: JSON lines, or human-readable text on a terminal (`logging.format`:
auto | json | text). airuns' own events go through structlog straight to the stream (the
per-call line stays ~1 µs); every stdlib `logging` record (alembic, uvicorn, SQLAlchemy,
asyncio, warnings, persistence's writer) is rendered by the same renderer onto the same stream.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
LOG_FORMATS = ("auto", "json", "text")
_HANDLER_NAME = "airuns"
# Libraries that install handlers of their own (litestar's app does, on the root logger too;
# uvicorn does, without propagating, when a server is run with its default log config): an
# entry point owns the process's logging, so theirs are replaced by ours.
_OWN_HANDLERS = ("litestar", "uvicorn", "uvicorn.error", "uvicorn.access")
# Libraries whose info lines are chatter at `info` (alembic's "Context impl SQLiteImpl."):
# shown from `debug`; their warnings and errors always.
_CHATTY = ("alembic",)


_encoder = msgspec.json.Encoder(enc_hook=repr)

Logger = structlog.typing.FilteringBoundLogger  # what every component logs through


def _render_json(event: dict, **_options: object) -> str:
    """msgspec renders a log line in ~1 µs where json.dumps takes several."""
    return _encoder.encode(event).decode()


def configure_logging(
    level: str = "info", stream: IO[str] | None = None, fmt: str = "auto"
) -> Logger:
    """airuns' own events (structlog) at `level`, rendered as `fmt` onto `stream` (stderr)."""
    out = stream or sys.stderr
    text = _wants_text(fmt, out)
    structlog.configure(
        processors=[structlog.processors.add_log_level, _timestamper(text), _renderer(text, out)],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger("airuns")


def configure_process_logging(
    level: str = "info", fmt: str = "auto", stream: IO[str] | None = None
) -> Logger:
    """What a process entry point (`airuns serve`, `migrate`, a server worker) calls: our
    events and every library's stdlib records in one format on one stream. It owns the root
    logger: any handler already there is replaced (`serve` configures before migrating, the
    app factory again after litestar has installed its own)."""
    out = stream or sys.stderr
    text = _wants_text(fmt, out)
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                _timestamper(text),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([] if text else [structlog.processors.format_exc_info]),
                _renderer(text, out),
            ],
        )
    )
    root = logging.getLogger()
    for other in list(root.handlers):  # ours from a previous call, and litestar's own
        root.removeHandler(other)
    root.addHandler(handler)
    for name in _OWN_HANDLERS:
        framework = logging.getLogger(name)
        for other in list(framework.handlers):
            framework.removeHandler(other)
        framework.propagate = True
        framework.disabled = False  # as a dictConfig that disabled existing loggers leaves them
    root.setLevel(_LEVELS[level])
    for name in _CHATTY:
        logging.getLogger(name).setLevel(_LEVELS[level] if level == "debug" else logging.WARNING)
    logging.captureWarnings(True)  # SQLAlchemy's warnings become log records, not stray text
    return configure_logging(level, out, fmt)


def _wants_text(fmt: str, stream: IO[str]) -> bool:
    if fmt not in LOG_FORMATS:
        raise ValueError(f"logging format must be one of {', '.join(LOG_FORMATS)}")
    return fmt == "text" or (fmt == "auto" and _is_terminal(stream))


def _timestamper(text: bool) -> Any:
    if text:  # local time for the person reading; JSON keeps UTC for machines
        return structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False)
    return structlog.processors.TimeStamper(fmt="iso", utc=True)


def _renderer(text: bool, stream: IO[str]) -> Any:
    if not text:
        return structlog.processors.JSONRenderer(serializer=_render_json)
    # Plain tracebacks: rich's would print local variables, and with them credentials.
    return structlog.dev.ConsoleRenderer(
        colors=_is_terminal(stream),
        exception_formatter=structlog.dev.plain_traceback,
        sort_keys=False,
        pad_event_to=0,
    )


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def log_start(
    log: Logger, *, version: str, url: str, database: str, providers: Mapping[str, str],
    admin_api: bool,
) -> None:  # fmt: skip
    """The one line `serve` prints once it listens: what a newcomer needs to check the setup
    (which URL, which database, where each provider points, whether the admin API is open)."""
    log.info(
        f"airuns {version} listening on {url}",
        database=database,
        providers=", ".join(f"{name} ({base})" for name, base in sorted(providers.items())),
        admin_api="on" if admin_api else "off (admin.api_key is empty)",
        ui="off (not in this version)",
    )


class Metrics:
    """The proxy's Prometheus series, on a registry of its own (one per app)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "airuns_requests",
            "Proxied calls by provider, endpoint and outcome.",
            ["provider", "endpoint", "status"],
            registry=self.registry,
        )
        self.overhead = Histogram(
            "airuns_overhead_seconds",
            "Time a call spent in airuns itself (total minus the upstream wait).",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=self.registry,
        )
        self.ttft = Histogram(
            "airuns_time_to_first_token_seconds",
            "Request received to first output delta, streaming calls.",
            ["provider"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, str], Counter] = {}

    def watch_recording(self, status: Callable[[], Mapping[str, int]]) -> None:
        """Expose the recorder's own counts (read at scrape time, never per call)."""
        self.registry.register(_RecordingCollector(status))

    def observe_call(
        self,
        provider: str,
        endpoint: str,
        status: str,
        overhead_s: float,
        ttft_ms: float | None = None,
    ) -> None:
        key = (provider, endpoint, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(*key)
        child.inc()
        self.overhead.observe(overhead_s)
        if ttft_ms is not None:
            self.ttft.labels(provider).observe(ttft_ms / 1000)


class _RecordingCollector:
    """`/readyz`'s recording figures as Prometheus series."""

    def __init__(self, status: Callable[[], Mapping[str, int]]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        report = self._status()
        yield GaugeMetricFamily(
            "airuns_records_backlog", "Call records not stored yet.", report.get("backlog", 0)
        )
        yield GaugeMetricFamily(
            "airuns_records_spooled", "Of them, records on disk.", report.get("spooled", 0)
        )
        yield CounterMetricFamily(
            "airuns_records_dropped", "Records lost: the spool was unusable.",
            report.get("dropped", 0),
        )  # fmt: skip
        yield CounterMetricFamily(
            "airuns_records_rejected",
            "Records the database refused for good (kept in the dead-letter file).",
            report.get("rejected", 0),
        )
