"""The official SDK's default retries, through the real processes: one logical call, recorded
as one request of its run whose task lists its three attempts."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer admin-secret"}
MESSAGES = [{"role": "user", "content": "hello there"}]


def final_tasks(stack, run_id: str, count: int, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        tasks = httpx.get(
            f"{stack.url}/admin/runs/{run_id}/tasks", headers=ADMIN, timeout=5
        ).json()["data"]
        final = [t for t in tasks if t["status"] not in ("pending", "streaming")]
        if len(final) >= count or time.monotonic() > deadline:
            return final
        time.sleep(0.1)


def admin(stack, path: str) -> dict:
    response = httpx.get(f"{stack.url}/admin{path}", headers=ADMIN, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("status", [502, 500])
def test_sdk_default_retries_are_one_request_with_three_attempts(stack, status):
    sdk = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sk-test")  # max_retries: default 2
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(
            model=f"gpt-4o-mini+error={status}",
            messages=MESSAGES,
            extra_headers={"X-Run-Id": "retried"},
        )
    tasks = final_tasks(stack, "retried", 3)
    first = tasks[0]["id"]
    assert [(t["attempt"], t["attempt_of"], t["retried"], t["http_status"]) for t in tasks] == [
        (1, None, True, status),
        (2, first, True, status),
        (3, first, False, status),
    ]
    run = admin(stack, "/runs/retried")
    assert (run["task_count"], run["error_count"]) == (1, 1)
    detail = admin(stack, f"/tasks/{tasks[1]['id']}")
    assert [(a["id"], a["attempt"]) for a in detail["attempts"]] == [
        (t["id"], n) for n, t in enumerate(tasks, 1)
    ]
    usage = admin(stack, "/usage?group_by=run")["data"]
    assert [(u["requests"], u["errors"]) for u in usage if u["key"] == "retried"] == [(1, 1)]


def test_a_call_whose_retry_succeeds_is_one_request_without_an_error(stack):
    def fail_first_attempt(request: httpx.Request) -> None:
        if request.headers.get("x-stainless-retry-count") == "0":
            request.headers["x-mock-status"] = "502"

    with httpx.Client(event_hooks={"request": [fail_first_attempt]}) as client:
        sdk = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sk-test", http_client=client)
        reply = sdk.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Run-Id": "recovered"}
        )
    assert reply.choices[0].message.content == "Mock reply to: hello there"
    tasks = final_tasks(stack, "recovered", 2)
    assert [(t["attempt"], t["status"], t["retried"]) for t in tasks] == [
        (1, "error", True),
        (2, "completed", False),
    ]
    run = admin(stack, "/runs/recovered")
    assert (run["task_count"], run["error_count"], run["message_count"]) == (1, 0, 2)
    assert run["total_tokens"] == tasks[1]["total_tokens"]
