"""A run and its tasks as a downloadable file: JSON, a Markdown transcript, or CSV. Pure.

- json: `{"run": <run with messages>, "tasks": [<task>, …]}` (the API's own shapes).
- markdown: title, the run's facts, then one section per task ("turn"): what the client sent
  that the previous turn had not (the new user/system/tool messages), the assistant's reply,
  and the turn's model, tokens, cost, TTFT and status.
- csv: one row per task, the task fields as columns; JSON fields as JSON text, money exact.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from proxy.admin.serialize import TASK_FIELDS, decimal_text, run_json, task_json, timestamp
from proxy.admin.transcript import render_markdown


@dataclass(frozen=True, slots=True)
class ExportFile:
    body: str
    media_type: str
    filename: str


def export_run(run: Any, tasks: Sequence[Any], fmt: str) -> ExportFile:
    render, media_type, extension = _FORMATS[fmt]
    return ExportFile(render(run, tasks), media_type, f"run-{_safe(run.id)}.{extension}")


def export_json(run: Any, tasks: Sequence[Any]) -> str:
    document = {"run": run_json(run, with_messages=True), "tasks": [task_json(t) for t in tasks]}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def export_csv(_run: Any, tasks: Sequence[Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(TASK_FIELDS)
    for task in tasks:
        writer.writerow([_cell(task._mapping[name]) for name in TASK_FIELDS])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _safe(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


# Media types without a charset: litestar appends `; charset=utf-8` to every text/* type.
_FORMATS: dict[str, tuple[Callable[[Any, Sequence[Any]], str], str, str]] = {
    "json": (export_json, "application/json", "json"),
    "markdown": (render_markdown, "text/markdown", "md"),
    "csv": (export_csv, "text/csv", "csv"),
}
EXPORT_FORMATS = tuple(_FORMATS)
EXPORT_MEDIA_TYPES = tuple(media_type for _, media_type, _ in _FORMATS.values())
