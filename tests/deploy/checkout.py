"""A fresh clone of the working tree and a fresh virtualenv, the way a newcomer or an image build
starts: nothing from this checkout's `.venv`, caches or local state leaks into what is tested."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Variables of this shell that would steer the commands under test to this checkout.
_LEAKY = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTEST_ADDOPTS"}


def copy_working_tree(destination: Path) -> Path:
    """What `git clone` would give, plus this tree's uncommitted and new (not ignored) files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not there
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without airuns settings or a virtualenv of its own."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AIRUNS_") and key not in _LEAKY
    }
    if sys.prefix != sys.base_prefix:  # the tests' own venv, if it is on PATH
        venv_bin = str(Path(sys.executable).parent)
        paths = environ.get("PATH", "").split(os.pathsep)
        environ["PATH"] = os.pathsep.join(p for p in paths if p != venv_bin)
    environ["PYTHONUNBUFFERED"] = "1"
    return {**environ, **(extra or {})}


class Venv:
    """A new virtualenv made with the machine's own Python (not this test's venv)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bin = path / "bin"

    @classmethod
    def create(cls, path: Path) -> Venv:
        base_python = shutil.which("python3", path=clean_environment()["PATH"]) or "python3"
        subprocess.run([base_python, "-m", "venv", str(path)], check=True)
        return cls(path)

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """`clean_environment` with this venv first on PATH, as if it were activated."""
        environ = clean_environment(extra)
        environ["PATH"] = f"{self.bin}{os.pathsep}{environ['PATH']}"
        return environ

    def run(self, *args: str, cwd: Path, timeout: float = 600, **extra: str) -> Timed:
        started = time.monotonic()
        done = subprocess.run(
            list(args),
            cwd=cwd,
            env=self.environment(extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Timed(done, time.monotonic() - started)


class Timed:
    """A finished command and how long it took (the tests print install times)."""

    def __init__(self, done: subprocess.CompletedProcess[str], seconds: float) -> None:
        self.done = done
        self.seconds = seconds

    def check(self) -> Timed:
        assert self.done.returncode == 0, (
            f"{self.done.args} exited {self.done.returncode}\n"
            f"stdout: {self.done.stdout[-3000:]}\nstderr: {self.done.stderr[-3000:]}"
        )
        return self
