"""The Dockerfile read instruction by instruction: what `docker build` would make of it, checked
without a Docker engine (tests/deploy/test_image_rehearsal.py replays its commands)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from tests.deploy import readme
from tests.deploy.checkout import REPO
from tests.deploy.dockerfile import Instruction, env_of, find, read_instructions, split_stages
from tests.deploy.image import DOCKERFILE, STOP_MARGIN_SECONDS, container_settings, shutdown_seconds

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CODE = set(PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"])  # proxy*, ...
STAGES = split_stages(read_instructions(DOCKERFILE))
BUILD, IMAGE = STAGES[0], STAGES[-1]


def dependency_install() -> Instruction:
    [run] = [i for i in find(IMAGE, "RUN") if "pip install -r" in i.arguments]
    return run


def test_the_base_image_has_the_python_the_project_requires():
    required = PYPROJECT["project"]["requires-python"]  # ">=3.11"
    for stage in STAGES:
        image = stage[0].words()[0]
        match = re.fullmatch(r"python:(\d+)\.(\d+)-slim", image)
        assert match, f"line {stage[0].line}: {image}"
        assert (int(match[1]), int(match[2])) >= (3, 11), required


def test_dependencies_are_installed_before_any_code_is_copied():
    """A code change must not reinstall the dependencies: only pyproject.toml may be copied into
    the image before they are installed, and the code goes in afterwards without them."""
    position = IMAGE.index(dependency_install())
    copied_before = [w for i in find(IMAGE[:position], "COPY") for w in i.words()[:-1]]
    assert copied_before == ["pyproject.toml"]
    code_copies = [i for i in find(IMAGE[position:], "COPY") if i.flags().get("from") == "build"]
    assert code_copies, "the image gets its code from the build stage's wheel"
    [install] = [i for i in find(IMAGE[position:], "RUN") if ".whl" in i.arguments]
    assert "--no-deps" in install.arguments and "pip check" in install.arguments


def test_the_dependency_layer_installs_exactly_pyprojects_dependencies(tmp_path: Path):
    """Run the layer's own `python -c` on pyproject.toml: its output is the requirements file."""
    [snippet] = re.findall(r"python -c '([^']*)'", dependency_install().arguments)
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    listed = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert listed == PYPROJECT["project"]["dependencies"]


def test_the_build_stage_copies_everything_the_wheel_is_built_from():
    copied = {w.rstrip("/") for i in find(BUILD, "COPY") for w in i.words()[:-1]}
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"]}
    needed |= {pattern.rstrip("*") for pattern in CODE}
    assert needed <= copied, needed - copied
    [build] = find(BUILD, "RUN")
    assert build.arguments.startswith("pip wheel") and "--no-deps" in build.arguments


def test_the_image_runs_the_container_config_as_a_non_root_user():
    config_path = env_of(IMAGE)["AIRUNS_CONFIG"]
    copies = {tuple(i.words()) for i in find(IMAGE, "COPY")}
    assert ("deploy/config.yaml", config_path) in copies
    user = find(IMAGE, "USER")[-1].arguments
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric, non-root uid (runAsNonRoot can check it)"
    [create] = [i for i in find(IMAGE, "RUN") if "useradd" in i.arguments]
    assert f"--uid {uid}" in create.arguments


def test_the_data_volume_holds_the_database_and_the_spool_and_is_the_users():
    [volume] = find(IMAGE, "VOLUME")
    assert volume.words() == ["/data"]
    settings = container_settings()
    assert settings.database.url.endswith("////data/airuns.db")
    assert settings.recording.spool_dir.startswith("/data/")
    # Docker discards changes made to a volume's path after VOLUME: the owner is set before it.
    [owner] = [i for i in IMAGE[: IMAGE.index(volume)] if "chown" in i.arguments]
    assert re.search(r"chown \S+ /data\b", owner.arguments)


def test_the_healthcheck_is_airuns_asking_itself_since_slim_has_no_curl():
    """`airuns healthcheck` reads the config the server reads (tests/proxy/test_cli.py)."""
    [check] = find(IMAGE, "HEALTHCHECK")
    command = Instruction("CMD", check.arguments.split(" CMD ", 1)[1], check.line).exec_form()
    assert command == ["airuns", "healthcheck"]
    assert not {"curl", "wget"} & set(check.arguments.split())
    flags = check.flags()
    assert {"interval", "timeout", "start-period", "retries"} <= set(flags)


def test_it_serves_on_the_exposed_port_and_stops_on_sigterm():
    assert find(IMAGE, "CMD")[-1].exec_form() == ["airuns", "serve"]
    [expose] = find(IMAGE, "EXPOSE")
    assert expose.words() == [str(container_settings().server.port)]
    [stop] = find(IMAGE, "STOPSIGNAL")
    assert stop.arguments == "SIGTERM"


def test_every_stop_timeout_the_dockerfile_and_readme_give_covers_the_shutdown():
    """`docker stop` waits 10 s by default, then kills: calls in flight would be cut."""
    needed = shutdown_seconds(container_settings()) + STOP_MARGIN_SECONDS
    text = DOCKERFILE.read_text() + readme.section("Run in Docker")
    given = [int(s) for s in re.findall(r"(?:--stop-timeout|docker stop -t) (\d+)", text)]
    assert given, "the stop timeout is documented"
    assert all(seconds >= needed for seconds in given), (given, needed)


def test_the_build_context_leaves_local_state_and_secrets_out():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", "**/*.db", "airuns-spool"} <= ignored


def test_the_build_context_keeps_everything_the_dockerfile_copies():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        word.rstrip("/")
        for stage in STAGES
        for i in find(stage, "COPY")
        if "from" not in i.flags()
        for word in i.words()[:-1]
    ]
    assert "deploy/config.yaml" in copied
    for source in copied:
        parts = Path(source).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        hits = [p for p in patterns for prefix in prefixes if fnmatch(prefix, p)]
        assert not hits, f"{source} is copied but .dockerignore leaves it out ({hits})"
