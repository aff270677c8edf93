"""A run as a Markdown transcript a person can read. Pure.

Each task is a turn. A chat request carries the whole conversation so far, so a turn shows
only what is new in it: the messages after the request's last assistant message (the first
turn shows them all, system prompt included), then the reply, then the turn's figures. A
Responses request is read as the chat messages it converts to (`persistence.conversation`), so
its function calls and their outputs read like a chat's tool calls and tool messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from persistence.conversation import conversation_input
from persistence.record import CHAT
from proxy.admin.serialize import decimal_text, timestamp

_TEXT_PARTS = {"text", "input_text", "output_text"}


def render_markdown(run: Any, tasks: Sequence[Any]) -> str:
    lines = [f"# {run.name}", "", *_facts(run), ""]
    if run.description:
        lines += [run.description, ""]
    for number, task in enumerate(tasks, 1):
        lines += _turn(number, task)
    if not tasks:
        lines += ["*No tasks recorded.*", ""]
    return "\n".join(lines)


def _facts(run: Any) -> list[str]:
    facts = [
        ("Run", f"`{run.id}`"),
        ("Status", run.status + (", starred" if run.is_starred else "")),
        ("Created", timestamp(run.created_at)),
        ("Last message", timestamp(run.last_message_at)),
        ("Tasks", f"{run.task_count} ({run.error_count} with errors)"),
        ("Tokens", _tokens(run.total_tokens, run.prompt_tokens, run.completion_tokens)),
        ("Cost", _run_cost(run)),
    ]
    if run.source_type or run.source_id:
        facts.append(("Source", " / ".join(filter(None, [run.source_type, run.source_id]))))
    if run.user_id:
        facts.append(("User", run.user_id))
    if run.tags:
        facts.append(("Tags", ", ".join(run.tags)))
    return [f"- **{label}:** {value}" for label, value in facts]


def _turn(number: int, task: Any) -> list[str]:
    label = f" · {task.task_name}" if task.task_name else ""
    lines = [f"## Turn {number}{label} — {timestamp(task.created_at)}", ""]
    if task.endpoint != CHAT:
        lines += [f"`{task.endpoint}`", ""]
    for role, text in _new_inputs(task.endpoint, task.request):
        lines += [f"**{role}**", "", text or "*(empty)*", ""]
    if task.response_text or task.tool_calls:
        lines += ["**Assistant**", "", task.response_text or "", *_tool_calls(task.tool_calls), ""]
    if task.error_message:
        lines += [f"**Error:** {task.error_message}", ""]
    return [*lines, f"*{_figures(task)}*", ""]


def _new_inputs(endpoint: str, request: Any) -> list[tuple[str, str]]:
    if not isinstance(request, dict):
        return []
    messages = conversation_input(endpoint, request)
    if messages is None:  # other endpoints: show what they were given as best we can
        messages = request.get("messages", request.get("input"))
    if isinstance(messages, str):
        return [("User", messages)]
    if isinstance(messages, list):
        items = [m for m in messages if isinstance(m, dict)]
        replies = [i for i, m in enumerate(items) if m.get("role") == "assistant"]
        new = items[replies[-1] + 1 :] if replies else items
        return [(_role(m), content_text(m.get("content"))) for m in new]
    prompt = request.get("prompt")
    return [("User", prompt if isinstance(prompt, str) else str(prompt))] if prompt else []


def _role(message: dict[str, Any]) -> str:
    role = str(message.get("role") or message.get("type") or "message").capitalize()
    call = message.get("tool_call_id")
    return f"{role} ({call})" if call else role


def content_text(content: Any) -> str:
    """Message content as text: strings as they are, parts joined, media as placeholders."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        return str(content)
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in _TEXT_PARTS:
            parts.append(str(part.get("text", "")))
        elif isinstance(part, dict):
            parts.append(f"[{part.get('type', 'part')}]")
        else:
            parts.append(str(part))
    return "\n".join(parts)


def _tool_calls(tool_calls: Any) -> list[str]:
    lines = []
    for call in tool_calls or []:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        lines.append(f"- calls `{function.get('name', '?')}({function.get('arguments', '')})`")
    return ["", *lines] if lines else []


def _figures(task: Any) -> str:
    figures = [
        task.response_model or task.upstream_model or task.model or "unknown model",
        _tokens(task.total_tokens, task.prompt_tokens, task.completion_tokens),
        "cost unknown" if task.cost is None else f"${decimal_text(task.cost)}",
        f"TTFT {_ms(task.time_to_first_token_ms)}",
    ]
    if task.total_time_ms is not None:
        figures.append(f"total {_ms(task.total_time_ms)}")
    if task.attempt > 1:
        figures.append(f"attempt {task.attempt}")
    status = f"{task.status}, retried" if task.retried else task.status
    return " · ".join([*figures, status])


def _tokens(total: int | None, prompt: int | None, completion: int | None) -> str:
    """A count the provider did not report is `?`, never 0."""
    if total is None and prompt is None and completion is None:
        return "tokens unknown"
    return f"{_count(total)} tokens ({_count(prompt)} prompt, {_count(completion)} completion)"


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _run_cost(run: Any) -> str:
    cost = f"${decimal_text(run.total_cost)}"
    if run.unpriced_task_count:
        count = run.unpriced_task_count
        cost += f" ({count} {'task' if count == 1 else 'tasks'} without a price)"
    return cost


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"
