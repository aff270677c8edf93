"""A small Dockerfile reader: there is no Docker engine to build with here, so the tests read
the instructions (continuation lines joined, comments dropped) and check or replay them."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    arguments: str  # the rest of the instruction, continuation lines joined by a space
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON-array form (`CMD ["airuns", "serve"]`), else None (shell form)."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        return json.loads(text)

    def flags(self) -> dict[str, str]:
        """Leading `--name=value` options (`COPY --from=build`, `HEALTHCHECK --interval=15s`)."""
        found = {}
        for word in shlex.split(self.arguments):
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name] = value
        return found

    def words(self) -> list[str]:
        """The arguments without the leading flags, split like a shell would."""
        return [w for w in shlex.split(self.arguments) if not w.startswith("--")]


def read_instructions(path: Path) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # Docker drops comments inside continuations
            continue
        if not pending:
            start = number
        pending.append(line.removesuffix("\\").strip())
        if not line.endswith("\\"):
            keyword, _, rest = " ".join(pending).partition(" ")
            instructions.append(Instruction(keyword.upper(), rest.strip(), start))
            pending = []
    return instructions


def split_stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """One list per `FROM`, the `FROM` first; the last one is the image that ships."""
    stages: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def find(stage: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in stage if i.keyword == keyword]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    """The `ENV` a container of this stage starts with (only the `KEY=value` form)."""
    env: dict[str, str] = {}
    for instruction in find(stage, "ENV"):
        for word in shlex.split(instruction.arguments):
            name, _, value = word.partition("=")
            env[name] = value
    return env
