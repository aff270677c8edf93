"""`airuns runs list|show|export`: the admin API's data for a terminal, straight from the
database in the config (no server needed), through the same queries and JSON shapes.

`--json` prints exactly what the API answers; without it, a table (list) or a summary with the
conversation, tasks and their errors (show). The CLI acts as the admin principal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError

from persistence.engine import check_database_url, create_engine
from persistence.queries import runs as run_queries
from persistence.queries import tasks as task_queries
from persistence.queries.cursor import CursorError
from persistence.queries.keyset import Page
from persistence.queries.scope import Principal
from persistence.record import is_unpriced
from proxy.admin.export import EXPORT_FORMATS, export_run
from proxy.admin.serialize import decimal_text, page_json, run_json, timestamp
from proxy.admin.transcript import content_text
from proxy.settings import load_settings

ADMIN = Principal.admin()
ConfigOption = Callable[[argparse.ArgumentParser], None]


class CommandError(Exception):
    """A message for the user; the command exits with status 1."""


def add_runs_commands(subparsers: Any, config_option: ConfigOption) -> None:
    runs = subparsers.add_parser(
        "runs",
        help="list, show and export recorded runs",
        description="Recorded runs, read straight from database.url (no server needed).",
    )
    commands = runs.add_subparsers(dest="runs_command", required=True, metavar="SUBCOMMAND")

    listing = commands.add_parser(
        "list",
        help="runs, most recent first (like GET /admin/runs)",
        description="Runs, most recent first, one line each (like GET /admin/runs).",
    )
    listing.add_argument(
        "--status", choices=run_queries.STATUS_FILTERS, default="active", help="which runs"
    )
    listing.add_argument(
        "--sort", choices=run_queries.SORTS, default="recent", help="order of the runs"
    )
    listing.add_argument("--limit", type=_limit, default=20, help="runs per page, 1–200")
    listing.add_argument("--cursor", help="next_cursor printed by the previous page")
    show = commands.add_parser(
        "show",
        help="one run with its conversation, tasks and errors",
        description="One run: its facts, each task with its attempt and error, and its cost.",
    )
    show.add_argument("run_id", metavar="RUN_ID", help="the run's id (its X-Run-Id)")
    export = commands.add_parser(
        "export",
        help="a run as json, markdown or csv",
        description="A run as json, markdown (a transcript) or csv (one row per task).",
    )
    export.add_argument("run_id", metavar="RUN_ID", help="the run's id (its X-Run-Id)")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="json", help="file format")
    export.add_argument(
        "--output", "-o", metavar="PATH", help="write to this file (default: stdout)"
    )
    for command, handler in ((listing, _list), (show, _show), (export, _export)):
        config_option(command)
        if command is not export:
            command.add_argument("--json", action="store_true", help="print the API's JSON")
        command.set_defaults(run=_runner(handler))


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 200:
        raise argparse.ArgumentTypeError("must be between 1 and 200")
    return value


def _runner(handler: Callable[..., Any]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = load_settings(args.config, os.environ)
        check_database_url(settings.database.url)  # DatabaseConfigError: one line, exit 2
        try:
            asyncio.run(handler(settings.database.url, args))
        except CommandError as exc:
            print(f"airuns: {exc}", file=sys.stderr)
            return 1
        except DBAPIError as exc:
            print(f"airuns: database error (run `airuns migrate`?): {exc.orig}", file=sys.stderr)
            return 1
        except OSError as exc:  # refused, or a host that does not resolve
            reason = (exc.strerror or str(exc)).lower()
            print(f"airuns: database unreachable ({reason})", file=sys.stderr)
            return 1
        return 0

    return run


async def _list(url: str, args: argparse.Namespace) -> None:
    filters = run_queries.RunFilter(status=args.status)
    try:
        after = run_queries.ORDERINGS[args.sort].decode(args.cursor) if args.cursor else None
    except CursorError as exc:
        raise CommandError(f"--cursor: {exc}") from None
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            page = await run_queries.list_runs(
                conn, ADMIN, filters, sort=args.sort, after=after, limit=args.limit
            )
    finally:
        await engine.dispose()
    _print_list(page, args.json)


async def _load_run(url: str, run_id: str) -> tuple[Any, list[Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            run = await run_queries.get_run(conn, ADMIN, run_id)
            if run is None:
                raise CommandError(f"no run with id {run_id!r}")
            return run, await task_queries.all_run_tasks(conn, ADMIN, run_id)
    finally:
        await engine.dispose()


async def _show(url: str, args: argparse.Namespace) -> None:
    run, tasks = await _load_run(url, args.run_id)
    if args.json:
        _print_json(run_json(run, with_messages=True))
    else:
        print(render_run(run, tasks))


async def _export(url: str, args: argparse.Namespace) -> None:
    run, tasks = await _load_run(url, args.run_id)
    file = export_run(run, tasks, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            out.write(file.body)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(file.body)


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def _print_list(page: Page, as_json: bool) -> None:
    if as_json:
        _print_json(page_json(page, run_json))
        return
    headers = ["ID", "NAME", "STATUS", "TASKS", "TOKENS", "COST", "LAST MESSAGE"]
    print(render_table(headers, [_run_cells(run) for run in page.rows]))
    if page.has_more:
        print(f"more: --cursor {page.next_cursor}", file=sys.stderr)


def _run_cells(run: Any) -> list[str]:
    name = ("* " if run.is_starred else "") + _clip(run.name, 40)
    return [
        run.id,
        name,
        run.status,
        str(run.task_count),
        f"{run.total_tokens:,}",
        _cost(run.total_cost, run.unpriced_task_count),
        timestamp(run.last_message_at),
    ]


def render_run(run: Any, tasks: Sequence[Any]) -> str:
    facts = [
        ("id", run.id),
        ("name", run.name),
        ("status", run.status + (" (starred)" if run.is_starred else "")),
        ("tasks", f"{run.task_count} ({run.error_count} errors{_retried(tasks)})"),
        (
            "tokens",
            f"{run.total_tokens:,} ({run.prompt_tokens:,} in, {run.completion_tokens:,} out)",
        ),
        ("cost", _cost(run.total_cost, count_unpriced(tasks))),
        ("created", timestamp(run.created_at)),
        ("last message", timestamp(run.last_message_at)),
    ]
    lines = [f"{label:>13}: {value}" for label, value in facts]
    lines += ["", "messages:"]
    for message in run.messages or []:
        role = str(message.get("role", "?")) if isinstance(message, dict) else "?"
        text = content_text(message.get("content")) if isinstance(message, dict) else ""
        lines.append(f"  {role:>9}: {_clip(' '.join(text.split()), 100)}")
    headers = ["TASK", "MODEL", "STATUS", "TOKENS", "COST", "TTFT MS", "STARTED"]
    lines += ["", render_table(headers, [_task_cells(task) for task in tasks])]
    errors = [task for task in tasks if task.error_message]
    if errors:
        lines += ["", "errors:"]
        lines += [
            f"  {task.id}: {_clip(' '.join(task.error_message.split()), 200)}" for task in errors
        ]
    return "\n".join(lines)


def count_unpriced(tasks: Sequence[Any]) -> int:
    return sum(is_unpriced(task.status, task.cost, task.total_tokens) for task in tasks)


def _task_cells(task: Any) -> list[str]:
    ttft = task.time_to_first_token_ms
    return [
        task.id,
        task.upstream_model or task.model or "",
        _task_status(task),
        "" if task.total_tokens is None else f"{task.total_tokens:,}",
        "" if task.cost is None else f"${decimal_text(task.cost)}",
        "" if ttft is None else f"{ttft:,.0f}",
        timestamp(task.created_at),
    ]


def _retried(tasks: Sequence[Any]) -> str:
    """Attempts a client retried are tasks of their own, not calls of the run's count."""
    retried = sum(1 for task in tasks if task.retried)
    return f"; +{retried} retried attempts" if retried else ""


def _task_status(task: Any) -> str:
    notes = [f"attempt {task.attempt}"] if task.attempt > 1 else []
    notes += ["retried"] if task.retried else []
    return task.status + (f" ({', '.join(notes)})" if notes else "")


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in [headers, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _cost(total: Any, unpriced: int) -> str:
    return f"${decimal_text(total)}" + (f" (+{unpriced} unpriced)" if unpriced else "")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
