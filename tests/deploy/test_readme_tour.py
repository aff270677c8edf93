"""The README's setup and tour, run as a newcomer runs them: in a fresh clone, `make run` (which
makes the clone's own `.venv`), then every command of "A 30-second tour" in order — the curl
calls, `pip install openai`, the SDK script with `.venv/bin/python`, the admin API and the CLI.

The commands are parsed out of README.md, never copied here, so the test and the README cannot
drift apart. Two liberties, both stated: the server listens on a free port rather than 8080
(each `localhost:8080` is rewritten), and between two commands the test waits until airuns has
stored what the earlier ones sent (a reader takes longer than `recording.flush_interval`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy import readme
from tests.deploy.checkout import clean_environment, copy_working_tree
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

README_ADDRESS = "localhost:8080"  # where the README says `make run` serves
ADMIN_KEY = "tour-admin-key"  # "set AIRUNS_ADMIN_KEY before `make run`"
# `make test` runs the whole suite, this test included: CI runs it anyway.
SETUP_NOT_RUN = {"make test"}
START_TIMEOUT = 240  # a new .venv and `pip install -e .`, from pip's cache or the index


@dataclass(frozen=True, slots=True)
class Step:
    language: str  # "sh": one shell command; "python": a script for `.venv/bin/python`
    text: str

    def run_ids(self) -> list[str]:
        """Each call this step makes under a run, by run id: a curl to `/v1/` with an
        `X-Run-Id` header is one call; a script makes one per `.create(`."""
        if self.language == "python":
            [run_id] = re.findall(r'"X-Run-Id":\s*"([^"]+)"', self.text) or [None]
            return [run_id] * self.text.count(".create(") if run_id else []
        if "/v1/" not in self.text:
            return []
        return re.findall(r"X-Run-Id:\s*([A-Za-z0-9._:-]+)", self.text)

    def reads_records(self) -> bool:
        return "/admin/" in self.text or "airuns runs" in self.text


def setup_commands(text: str | None = None) -> list[str]:
    [block] = readme.code_blocks(readme.section("Set up: two commands", text), "sh")
    return readme.shell_commands(block.text)


def tour_steps(text: str | None = None) -> list[Step]:
    """The tour's commands and script, in order; `text` is a README (default: this tree's)."""
    steps = []
    for block in readme.code_blocks(readme.section("A 30-second tour", text)):
        if block.language == "sh":
            steps += [Step("sh", command) for command in readme.shell_commands(block.text)]
        elif block.language == "python":
            steps.append(Step("python", block.text))
        else:
            raise AssertionError(f"the tour has a {block.language!r} block the test cannot run")
    return steps


def test_the_setup_is_make_run_and_make_test():
    assert [_words(c) for c in setup_commands()] == [["make", "run"], ["make", "test"]]


def test_the_tour_makes_calls_into_runs_and_then_reads_them_back():
    """What the tour test relies on, so that it cannot pass by running nothing."""
    steps = tour_steps()
    assert {s.language for s in steps} == {"sh", "python"}
    assert any(s.run_ids() for s in steps if s.language == "sh")
    assert any(s.run_ids() for s in steps if s.language == "python")
    assert steps[-1].reads_records()
    models = {m for s in steps for m in re.findall(r'"?model"?\s*[:=]\s*"([^"]+)"', s.text)}
    assert len(models) == 1, f"the tour's calls name one model, not {models}"
    assert all(README_ADDRESS in s.text for s in steps if "localhost" in s.text)


def test_the_readme_tour_runs_from_a_fresh_clone(tmp_path: Path):
    clone = copy_working_tree(tmp_path / "clone")
    text = (clone / "README.md").read_text()
    port, mock_port = free_port(), free_port()
    environ = clean_environment({"AIRUNS_ADMIN_KEY": ADMIN_KEY})
    log = tmp_path / "make-run.log"
    [run] = [c for c in setup_commands(text) if _words(c) not in map(_words, SETUP_NOT_RUN)]
    started = time.monotonic()
    server = subprocess.Popen(
        [*_words(run), f"PORT={port}", f"MOCK_PORT={mock_port}"],
        cwd=clone,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: make, the mock and airuns stop together
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, server, log)
        print(f"`make run` in a fresh clone: ready after {time.monotonic() - started:.1f}s")
        named: set[str] = set()  # the runs the tour's calls so far went into
        for step in tour_steps(text):
            _wait_until_stored(url)
            output = _run(step, clone, tmp_path, environ, port)
            _check_output(step, output)
            named |= set(step.run_ids())
            if step.reads_records():
                assert any(run_id in output for run_id in named), (step.text, output[-2000:])
        _wait_until_stored(url)
        _check_recorded(url, tour_steps(text))
    finally:
        _stop(server)


def _run(step: Step, clone: Path, tmp_path: Path, environ: dict[str, str], port: int) -> str:
    text = step.text.replace(README_ADDRESS, f"localhost:{port}")
    if step.language == "python":
        script = tmp_path / "tour_sdk.py"
        script.write_text(text)
        command = [str(clone / ".venv/bin/python"), str(script)]
    else:
        command = ["bash", "-c", text]
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=clone, env=environ, capture_output=True, text=True, timeout=300
    )
    print(f"{time.monotonic() - started:5.1f}s  {step.text.splitlines()[0]}")
    assert done.returncode == 0, (
        f"README tour step failed ({done.returncode}):\n{step.text}\n"
        f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
    )
    return done.stdout


def _check_output(step: Step, output: str) -> None:
    """What a reader would see go wrong: an error body, a stream cut short, nothing at all."""
    if step.language == "python" or step.run_ids() or step.reads_records():
        assert output.strip(), f"no output from:\n{step.text}"
    if "data:" in output:
        data = [line[5:].strip() for line in output.splitlines() if line.startswith("data:")]
        assert data[-1] == "[DONE]" and "event: error" not in output, output[-2000:]
        return
    try:
        body = json.loads(output)
    except ValueError:
        return
    assert not (isinstance(body, dict) and "error" in body), f"{step.text}\n{output[-2000:]}"


def _check_recorded(url: str, steps: list[Step]) -> None:
    """Every call the tour made is a completed task in the run it named."""
    calls = Counter(run_id for step in steps for run_id in step.run_ids())
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for run_id, count in calls.items():
        tasks = httpx.get(f"{url}/admin/runs/{run_id}/tasks", headers=admin, timeout=10)
        assert tasks.status_code == 200, tasks.text
        statuses = [task["status"] for task in tasks.json()["data"]]
        assert statuses == ["completed"] * count, (run_id, statuses)


def _wait_until_ready(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert server.poll() is None, f"`make run` exited {server.returncode}:\n{_tail(log)}"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"`make run` not ready in {START_TIMEOUT}s:\n{_tail(log)}")


def _wait_until_stored(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (report := httpx.get(f"{url}/readyz", timeout=5).json())["backlog"]:
        assert time.monotonic() < deadline, f"records not stored: {report}"
        time.sleep(0.05)


def _stop(server: subprocess.Popen) -> None:
    """The whole group `make run` started (make, its shell, the mock, airuns), as Ctrl-C would."""
    try:
        os.killpg(server.pid, signal.SIGINT)  # the group outlives make if make died first
        server.wait(timeout=45)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _words(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]
