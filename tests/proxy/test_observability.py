"""One log format per process: airuns' own events and every library's stdlib records render
alike, JSON lines or text, onto one stream."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
import uvicorn.config

from proxy.observability import configure_process_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_json_format_renders_our_events_and_library_records_as_json_lines() -> None:
    stream = io.StringIO()
    log = configure_process_logging("info", "json", stream)
    log.info("ours", key="value")
    logging.getLogger("uvicorn.error").warning("theirs %s", "too")
    logging.getLogger("alembic.runtime.migration").info("chatter below warning")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["event"], e["level"]) for e in lines] == [
        ("ours", "info"),
        ("theirs too", "warning"),
    ]
    assert lines[0]["key"] == "value" and lines[1]["logger"] == "uvicorn.error"


def test_text_format_renders_both_as_readable_lines() -> None:
    stream = io.StringIO()
    log = configure_process_logging("info", "text", stream)
    log.info("ours", key="value")
    logging.getLogger("uvicorn.error").warning("theirs")

    ours, theirs = stream.getvalue().splitlines()
    assert "[info" in ours and "ours" in ours and "key=value" in ours
    assert "[warning" in theirs and "theirs" in theirs and not theirs.startswith("{")


def test_auto_is_json_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_process_logging("info", "auto", stream).info("hello")
    assert json.loads(stream.getvalue())["event"] == "hello"


def test_library_records_reach_us_however_uvicorn_configured_its_loggers() -> None:
    """A server started earlier with uvicorn's default log config (its own handlers, no
    propagation) or a dictConfig that disabled existing loggers: configuring takes them back."""
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    logging.getLogger("uvicorn.access").disabled = True
    stream = io.StringIO()
    configure_process_logging("info", "json", stream)
    logging.getLogger("uvicorn.error").warning("error line")
    logging.getLogger("uvicorn.access").warning("access line")
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["error line", "access line"]


def test_configuring_again_leaves_one_handler() -> None:
    stream = io.StringIO()
    configure_process_logging("info", "json", io.StringIO())
    configure_process_logging("info", "json", stream)
    logging.getLogger("sqlalchemy").warning("once")
    assert len(stream.getvalue().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["xml", "", "\x00"])
def test_an_unknown_format_is_refused(fmt: str) -> None:
    with pytest.raises(ValueError, match="auto, json, text"):
        configure_process_logging("info", fmt, io.StringIO())
