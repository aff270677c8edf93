"""apply_batch: runs and tasks from call records; aggregates equal the sums over tasks, once."""

from decimal import Decimal

from persistence.record import RunInfo
from pricing.usage import Usage


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def chat_request(*messages: dict) -> dict:
    return {"model": "m", "temperature": 0.2, "max_tokens": 50, "messages": list(messages)}


async def test_first_call_creates_run_with_generated_name_and_settings(records, probe) -> None:
    request = chat_request(user("Summarize the quarterly report for me please"))
    await probe.apply(records.make("t1", request=request, user_id="u1"))
    run = await probe.run()
    assert run.name == "Summarize the quarterly report for me please"
    assert run.settings == {"model": "m", "temperature": 0.2, "max_tokens": 50}
    assert (run.status, run.is_starred, run.tags, run.metadata) == ("active", False, [], {})
    assert (run.user_id, run.created_at, run.task_count) == ("u1", records.t0, 1)


async def test_run_headers_are_applied_when_the_run_is_created(records, probe) -> None:
    info = RunInfo(
        id="run-1", name="Nightly eval", source_type="agent", source_id="a-7", metadata={"k": 1}
    )
    await probe.apply(records.make("t1", run=info))
    run = await probe.run()
    assert (run.name, run.source_type, run.source_id) == ("Nightly eval", "agent", "a-7")
    assert run.metadata == {"k": 1}


async def test_later_calls_merge_metadata_but_keep_the_name(records, probe) -> None:
    first = RunInfo(id="run-1", name="A", metadata={"a": 1})
    later = RunInfo(id="run-1", name="B", metadata={"b": 2, "a": 3})
    await probe.apply(records.make("t1", run=first))
    await probe.apply(records.make("t2", run=later, started=5))
    run = await probe.run()
    assert (run.name, run.metadata) == ("A", {"a": 3, "b": 2})


async def test_run_name_falls_back_to_the_date(records, probe) -> None:
    await probe.apply(records.make("t1", request={"model": "m", "input": [1, 2]}))
    assert (await probe.run()).name == "Run - Nov 21, 2026 9:05 AM"


async def test_tokens_and_cost_add_up_exactly(records, probe) -> None:
    await probe.apply(*(records.make(f"t{i}", started=i) for i in range(3)))
    tasks = await probe.tasks()
    assert [t.cost for t in tasks] == [records.usage_cost] * 3
    assert (tasks[0].input_cost, tasks[0].output_cost) == (Decimal("0.003"), Decimal("0.0007"))
    assert (tasks[0].price["input"], tasks[0].price["source"]) == ("3", "override")
    assert await probe.aggregates() == {
        "task_count": 3,
        "error_count": 0,
        "prompt_tokens": 3000,
        "completion_tokens": 300,
        "total_tokens": 3300,
        "total_cost": Decimal("0.0111"),
        "unpriced_task_count": 0,
    }
    await probe.assert_aggregates_match_tasks()


async def test_unknown_model_or_missing_usage_is_unpriced_not_zero(records, probe) -> None:
    await probe.apply(
        records.make("known", started=0),
        records.make("unknown", model=records.unknown_model, started=1),
        records.make("no-usage", usage=None, started=2),
    )
    tasks = {t.id: t for t in await probe.tasks()}
    assert (tasks["unknown"].cost, tasks["unknown"].price) == (None, None)
    assert (tasks["no-usage"].cost, tasks["no-usage"].prompt_tokens) == (None, None)
    run = await probe.run()
    assert (run.total_cost, run.unpriced_task_count) == (records.usage_cost, 2)
    assert run.prompt_tokens == 2000
    await probe.assert_aggregates_match_tasks()


async def test_a_failure_without_usage_has_nothing_to_price(records, probe) -> None:
    await probe.apply(
        records.make("a-502", status="error", http_status=502, usage=None, started=0),
        records.make("timed-out", status="timeout", usage=None, started=1),
        records.make("left", status="cancelled", usage=None, started=2),
    )
    run = await probe.run()
    assert (run.total_cost, run.unpriced_task_count) == (0, 1)  # the cancelled call's is unknown
    await probe.assert_aggregates_match_tasks()


async def test_errors_and_timeouts_count_as_errors_but_cancelled_does_not(records, probe) -> None:
    statuses = ["completed", "error", "timeout", "cancelled"]
    await probe.apply(*(records.make(s, status=s, started=i) for i, s in enumerate(statuses)))
    run = await probe.run()
    assert (run.task_count, run.error_count) == (4, 2)
    await probe.assert_aggregates_match_tasks()


async def test_applying_the_same_batch_twice_changes_nothing_twice(records, probe) -> None:
    batch = [
        records.make("t1", status="pending"),
        records.make("t1"),
        records.make("t2", status="pending", started=1),
        records.make("t3", status="error", started=2),
    ]
    await probe.apply(*batch)
    first = await probe.aggregates()
    await probe.apply(*batch)
    assert await probe.aggregates() == first
    assert first["task_count"] == 3
    await probe.assert_aggregates_match_tasks()


async def test_start_and_final_in_separate_batches_count_once(records, probe) -> None:
    await probe.apply(records.make("t1", status="pending"))
    pending = await probe.aggregates()
    assert (pending["task_count"], pending["total_tokens"], pending["total_cost"]) == (1, 0, 0)
    assert (await probe.tasks())[0].status == "pending"
    final = records.make("t1")
    await probe.apply(final)
    await probe.apply(final)  # replayed after a lost commit
    await probe.apply(records.make("t1", status="pending"))  # a stale start arriving late
    (task,) = await probe.tasks()
    assert (task.status, task.cost) == ("completed", records.usage_cost)
    assert task.completed_at == final.completed_at
    run = await probe.run()
    assert (run.task_count, run.total_tokens, run.total_cost) == (1, 1100, records.usage_cost)
    await probe.assert_aggregates_match_tasks()


async def test_final_without_start_is_recorded_and_counted(records, probe) -> None:
    await probe.apply(records.make("t1", status="timeout"))
    run = await probe.run()
    assert (run.task_count, run.error_count, run.total_tokens) == (1, 1, 1100)


async def test_start_and_final_in_one_batch_make_one_row_from_the_start(records, probe) -> None:
    await probe.apply(
        records.make("t1", status="pending", started=0), records.make("t1", started=0.5)
    )
    (task,) = await probe.tasks()
    assert (task.status, task.created_at, task.total_tokens) == ("completed", records.t0, 1100)
    assert (await probe.run()).task_count == 1


async def test_streaming_status_moves_pending_forward_only(records, probe) -> None:
    await probe.apply(records.make("t1", status="pending"))
    await probe.apply(records.make("t1", status="streaming", http_status=200))
    assert (await probe.tasks())[0].status == "streaming"
    await probe.apply(records.make("t1", http_status=201))
    await probe.apply(records.make("t1", status="streaming", http_status=200))
    (task,) = await probe.tasks()
    assert (task.status, task.http_status) == ("completed", 201)
    await probe.assert_aggregates_match_tasks()


async def test_last_message_at_is_the_latest_completion(records, probe) -> None:
    later = records.make("t2", started=10, duration=5)
    await probe.apply(later)
    await probe.apply(records.make("t1", started=0, duration=1))
    assert (await probe.run()).last_message_at == later.completed_at
    await probe.assert_aggregates_match_tasks()


async def test_run_messages_are_the_latest_started_chat_conversation(records, probe) -> None:
    older = records.make(
        "old", started=0, duration=30, request=chat_request(user("old")), response_text="A"
    )
    newer = records.make(
        "new", started=10, duration=1, request=chat_request(user("new")), response_text="B"
    )
    await probe.apply(newer)
    await probe.apply(older)  # started first, finished last: must not overwrite
    run = await probe.run()
    assert run.messages == [user("new"), {"role": "assistant", "content": "B"}]
    assert run.message_count == 2


async def test_only_completed_chat_tasks_set_messages(records, probe) -> None:
    await probe.apply(
        records.make("chat", started=0, request=chat_request(user("q")), response_text="ok"),
        records.make("failed", started=1, status="error", request=chat_request(user("x"))),
        records.make("emb", started=2, endpoint="/v1/embeddings", request={"input": "x"}),
        records.make("open", started=3, status="pending", request=chat_request(user("y"))),
    )
    run = await probe.run()
    assert run.messages == [user("q"), {"role": "assistant", "content": "ok"}]


RESPONSES = "/v1/responses"


def responses_request(input_: object, **fields: object) -> dict:
    return {"model": "m", "instructions": "Be terse.", "input": input_, **fields}


async def test_a_responses_task_sets_chat_shaped_messages(records, probe) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    history = [
        user("weather?"),
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "call_0", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_0", "output": "sunny"},
    ]
    reply = {"response_text": "Sunny.", "tool_calls": [call]}
    await probe.apply(
        records.make("r1", endpoint=RESPONSES, request=responses_request(history), **reply)
    )
    run = await probe.run()
    assert run.messages == [
        {"role": "system", "content": "Be terse."},
        user("weather?"),
        {"role": "assistant", "content": None, "tool_calls": [call | {"id": "call_0"}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
        {"role": "assistant", "content": "Sunny.", "tool_calls": [call]},
    ]
    assert run.message_count == 5


async def test_the_latest_started_task_wins_across_chat_and_responses(records, probe) -> None:
    chat = records.make(
        "chat", started=0, duration=30, request=chat_request(user("c")), response_text="C"
    )
    responses = records.make(
        "resp", started=10, endpoint=RESPONSES, request=responses_request("r"), response_text="R"
    )
    later_chat = records.make(
        "chat2", started=20, request=chat_request(user("c2")), response_text="C2"
    )
    await probe.apply(responses)
    await probe.apply(chat)  # started first, finished last: must not overwrite
    assert (await probe.run()).messages[1:] == [user("r"), {"role": "assistant", "content": "R"}]
    await probe.apply(later_chat)  # a later-started chat task replaces the Responses one
    assert (await probe.run()).messages == [user("c2"), {"role": "assistant", "content": "C2"}]
    later_responses = records.make(
        "resp2", started=30, endpoint=RESPONSES, request={"input": "r2"}, response_text="R2"
    )
    await probe.apply(later_responses)  # and a later-started Responses task replaces that
    run = await probe.run()
    assert run.messages == [user("r2"), {"role": "assistant", "content": "R2"}]
    assert run.message_count == 2


async def test_responses_tasks_without_input_or_not_completed_leave_messages(
    records, probe
) -> None:
    await probe.apply(
        records.make("chat", started=0, request=chat_request(user("q")), response_text="ok"),
        records.make("failed", started=1, endpoint=RESPONSES, status="error",
                     request=responses_request("x")),
        records.make("truncated", started=2, endpoint=RESPONSES,
                     request={"model": "m", "_truncated": True, "_bytes": 2_000_000}),
        records.make("hostile", started=3, endpoint=RESPONSES, request={"input": {"a": [1]}}),
    )  # fmt: skip
    run = await probe.run()
    assert run.messages == [user("q"), {"role": "assistant", "content": "ok"}]


async def test_tasks_without_a_run_create_no_run(records, probe) -> None:
    await probe.apply(records.make("t1", run=None, status="pending"))
    await probe.apply(records.make("t1", run=None))
    (task,) = await probe.tasks()
    assert (task.run_id, task.status, task.cost) == (None, "completed", records.usage_cost)
    assert await probe.run_count() == 0


async def test_missing_counts_stay_null(records, probe) -> None:
    await probe.apply(records.make("t1", usage=Usage(prompt_tokens=12)))
    (task,) = await probe.tasks()
    assert (task.prompt_tokens, task.completion_tokens, task.total_tokens) == (12, None, None)
    assert task.cost is None
    await probe.assert_aggregates_match_tasks()


async def test_full_batches_over_many_runs_add_up(records, probe) -> None:
    def batch(statuses: tuple[str, ...]) -> list:
        return [
            records.make(f"t{i:03}", run=f"run-{i % 7}", started=i, status=status)
            for i in range(250)
            for status in statuses
        ]

    await probe.apply(*batch(("pending", "completed"))[:300])  # 150 done, 150 pending
    await probe.apply(*batch(("streaming",)))
    await probe.apply(*batch(("completed",)))
    tasks = await probe.tasks()
    assert len(tasks) == 250 and {t.status for t in tasks} == {"completed"}
    for run in range(7):
        await probe.assert_aggregates_match_tasks(f"run-{run}")


async def test_metadata_merges_top_level_keys_alike_on_both_databases(records, probe) -> None:
    first = RunInfo(id="run-1", metadata={"env": {"region": "eu", "tier": 1}, "keep": True})
    later = RunInfo(id="run-1", metadata={"env": {"region": "us"}, "gone": None, "k.x": [1]})
    await probe.apply(records.make("t1", run=first))
    await probe.apply(records.make("t2", run=later, started=1))
    run = await probe.run()
    # a sent key replaces the stored one whole (no deep merge); null is kept as a value
    assert run.metadata == {"env": {"region": "us"}, "keep": True, "gone": None, "k.x": [1]}


async def test_metadata_keys_with_quotes_and_path_characters_are_stored_once(
    records, probe
) -> None:
    keys = {'c"d': 1, "a.b": 2, "$[0]": 3, "e'f": 4, 'g\\"h': 5}
    await probe.apply(records.make("t1", run=RunInfo(id="run-1", metadata={"x": 0})))
    await probe.apply(records.make("t2", started=1, run=RunInfo(id="run-1", metadata=keys)))
    assert (await probe.run()).metadata == {"x": 0, **keys}


async def test_an_embeddings_run_is_named_by_date_not_after_its_input(records, probe) -> None:
    request = {"model": "text-embedding-3-small", "input": "a document to embed"}
    await probe.apply(records.make("t1", endpoint="/v1/embeddings", request=request))
    assert (await probe.run()).name == "Run - Nov 21, 2026 9:05 AM"


async def test_values_the_databases_refuse_are_stored_by_the_storable_rule(records, probe) -> None:
    """NUL, lone surrogates and NaN from clients and upstreams, in every kind of column."""
    info = RunInfo(id="run-1", name="name\x00", source_type="s\ud800", metadata={"m\x00": "v"})
    request = {
        "model": "m",
        "temperature": float("nan"),
        "messages": [user("hi\x00 \ud800x"), user("\udfff")],
    }
    await probe.apply(
        records.make(
            "t1",
            run=info,
            request=request,
            user_id="u\x00",
            response_text="reply\x00\ud800",
            tool_calls=[{"id": "c", "function": {"name": "f\x00", "arguments": "\ud800"}}],
            finish_reason="stop\x00",
        )
    )
    run = await probe.run()
    (task,) = await probe.tasks()
    assert (run.name, run.source_type, run.metadata) == ("name\ufffd", "s\ufffd", {"m\ufffd": "v"})
    assert run.settings == {"model": "m", "temperature": "NaN"}
    assert task.request["messages"] == [user("hi\ufffd \ufffdx"), user("\ufffd")]
    assert (task.response_text, task.user_id) == ("reply\ufffd\ufffd", "u\ufffd")
    assert task.tool_calls[0]["function"] == {"name": "f\ufffd", "arguments": "\ufffd"}
    assert run.messages[-1]["content"] == "reply\ufffd\ufffd"
    await probe.assert_aggregates_match_tasks()
