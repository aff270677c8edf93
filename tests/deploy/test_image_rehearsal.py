"""The Dockerfile replayed on this machine, since no Docker engine runs here: its build steps run
in a new virtualenv with the image's paths moved under a folder of the test's (`/wheels` becomes
`<root>/wheels`, and so on), then its `CMD` serves with the image's config and `ENV`, its
`HEALTHCHECK` command asks the server, and its `STOPSIGNAL` stops a call in flight.

Not replayed: `FROM` (this machine's Python stands in for the base image), the user-creation
`RUN` (it would change this machine) and `USER`. The image's `PIP_NO_CACHE_DIR` is dropped so
the replay installs from pip's cache. What a container differs in is set through the
environment, as an operator would: where `/data` is, the loopback address, a free port, the
`openai` provider pointed at `airuns mock-upstream`, and a short grace period.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from proxy.settings import parse_settings
from tests.deploy.checkout import Venv, copy_working_tree
from tests.deploy.dockerfile import Instruction, env_of, find, read_instructions, split_stages
from tests.deploy.image import DOCKERFILE, STOP_MARGIN_SECONDS, shutdown_seconds
from tests.e2e.conftest import stop
from tests.support.servers import free_port, wait_until_up

pytestmark = pytest.mark.e2e

STAGES = split_stages(read_instructions(DOCKERFILE))
BUILD, IMAGE = STAGES[0], STAGES[-1]
NOT_REPLAYED = ("useradd",)  # RUNs that would change this machine
GRACE_SECONDS = 2  # AIRUNS_SHUTDOWN_GRACE_PERIOD for the stop
_ABSOLUTE = re.compile(r"(?<![\w.:/-])/[A-Za-z][\w./*-]*")


class Image:
    """A folder standing in for the image's filesystem, and the build replayed into it."""

    def __init__(self, root: Path, context: Path, venv: Venv) -> None:
        self.root, self.context, self.venv = root, context, venv
        self.workdir = root

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def remap(self, command: str) -> str:
        return _ABSOLUTE.sub(lambda m: str(self.path(m.group(0))), command)

    def replay(self, stage: list[Instruction], environ: dict[str, str]) -> None:
        for instruction in stage[1:]:
            if instruction.keyword == "WORKDIR":
                self.workdir = self.path(instruction.arguments)
                self.workdir.mkdir(parents=True, exist_ok=True)
            elif instruction.keyword == "COPY":
                self.copy(instruction)
            elif instruction.keyword == "RUN" and not any(
                word in instruction.arguments for word in NOT_REPLAYED
            ):
                done = self.venv.run(
                    "bash", "-ec", self.remap(instruction.arguments), cwd=self.workdir, **environ
                )
                print(f"{done.seconds:5.1f}s  RUN (line {instruction.line})")
                done.check()

    def copy(self, instruction: Instruction) -> None:
        *sources, destination = instruction.words()
        source_root = self.root if "from" in instruction.flags() else self.context
        for source in sources:
            origin = source_root / source.lstrip("/")
            target = (
                self.path(destination)
                if destination.startswith("/")
                else self.workdir / destination
            )
            if origin.is_dir():
                shutil.copytree(origin, target, dirs_exist_ok=True)
            else:
                if destination.endswith("/"):
                    target = target / origin.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)


def test_the_image_builds_serves_answers_its_healthcheck_and_stops_within_its_timeout(
    tmp_path: Path,
):
    context = copy_working_tree(tmp_path / "context")
    image = Image(tmp_path / "root", context, Venv.create(tmp_path / "venv"))
    build_env = {k: v for k, v in env_of(IMAGE).items() if k != "PIP_NO_CACHE_DIR"}
    started = time.monotonic()
    image.replay(BUILD, build_env)
    image.replay(IMAGE, build_env)
    print(f"the image's build replayed in {time.monotonic() - started:.1f}s")

    port, mock_port = free_port(), free_port()
    data = image.path("/data")
    data.mkdir(parents=True, exist_ok=True)
    environ = {
        **build_env,
        "AIRUNS_CONFIG": str(image.path(env_of(IMAGE)["AIRUNS_CONFIG"])),
        "AIRUNS_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'airuns.db'}",
        "AIRUNS_RECORDING_SPOOL_DIR": str(data / "spool"),
        "AIRUNS_SERVER_HOST": "127.0.0.1",
        "AIRUNS_SERVER_PORT": str(port),
        "AIRUNS_PROVIDERS_OPENAI_BASE_URL": f"http://127.0.0.1:{mock_port}/v1",
        "AIRUNS_SHUTDOWN_GRACE_PERIOD": str(GRACE_SECONDS),
        "AIRUNS_ADMIN_KEY": "admin-test",
    }
    settings = parse_settings(Path(environ["AIRUNS_CONFIG"]).read_text(), environ)
    assert "mock" not in settings.providers
    env = image.venv.environment(environ)
    mock = subprocess.Popen(
        [str(image.venv.bin / "airuns"), "mock-upstream", "--port", str(mock_port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    [cmd] = find(IMAGE, "CMD")
    serve = subprocess.Popen(
        cmd.exec_form(), cwd=data, env=env, stderr=(tmp_path / "serve.log").open("wb")
    )
    try:
        wait_until_up(f"http://127.0.0.1:{mock_port}/v1/models", mock)
        wait_until_up(f"http://127.0.0.1:{port}/healthz", serve, timeout=60)
        assert _healthcheck(image, env) == 0
        _call_and_see_it_recorded(f"http://127.0.0.1:{port}")
        _stop_with_a_call_in_flight(serve, f"http://127.0.0.1:{port}", shutdown_seconds(settings))
        assert _healthcheck(image, env) != 0, "the HEALTHCHECK fails when nothing answers"
    finally:
        stop(serve)
        stop(mock)


def _healthcheck(image: Image, env: dict[str, str]) -> int:
    [check] = find(IMAGE, "HEALTHCHECK")
    command = Instruction("CMD", check.arguments.split(" CMD ", 1)[1], check.line).exec_form()
    assert command is not None
    done = subprocess.run(
        command, env=env, cwd=image.path("/data"), capture_output=True, timeout=30
    )
    return done.returncode


def _call_and_see_it_recorded(url: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
    reply = httpx.post(
        f"{url}/v1/chat/completions", json=body, headers={"X-Run-Id": "image-1"}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    admin = {"Authorization": "Bearer admin-test"}
    deadline = time.monotonic() + 15
    while (tasks := httpx.get(f"{url}/admin/runs/image-1/tasks", headers=admin)).status_code != 200:
        assert time.monotonic() < deadline, tasks.text
        time.sleep(0.1)
    [task] = tasks.json()["data"]
    assert (task["provider"], task["status"]) == ("openai", "completed")  # the default, from env


def _stop_with_a_call_in_flight(serve: subprocess.Popen, url: str, bound: float) -> None:
    """SIGTERM (the image's STOPSIGNAL) while a stream that never ends is relayed: the process
    waits out the grace period, stores what is queued and exits 0, within `bound` plus
    `STOP_MARGIN_SECONDS`, the time `docker stop -t` must allow beyond the two phases."""
    [signal_name] = find(IMAGE, "STOPSIGNAL")
    assert signal_name.arguments == "SIGTERM"
    streaming = threading.Event()

    def endless() -> None:
        messages = [{"role": "user", "content": "go on"}]
        body = {"model": "gpt-4o-mini+endless=1", "stream": True, "messages": messages}
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
                for _ in r.iter_bytes():
                    streaming.set()
        except httpx.HTTPError:
            pass

    caller = threading.Thread(target=endless, daemon=True)
    caller.start()
    assert streaming.wait(15), "the endless stream did not start"
    started = time.monotonic()
    serve.terminate()
    code = serve.wait(timeout=bound + STOP_MARGIN_SECONDS + 30)
    took = time.monotonic() - started
    caller.join(5)
    print(f"stopped in {took:.1f}s (grace {GRACE_SECONDS}s, bound {bound:.1f}s)")
    assert code == 0
    assert GRACE_SECONDS - 0.5 <= took <= bound + STOP_MARGIN_SECONDS, took
