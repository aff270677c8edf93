"""README.md read as data: its sections and fenced code blocks, so the tests that run or compare
them break when the README changes."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class CodeBlock:
    language: str
    text: str


def section(title: str, text: str | None = None) -> str:
    """The body of the `## title` section, up to the next `## ` heading."""
    text = README.read_text() if text is None else text
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if match is None:
        raise AssertionError(f"README.md has no '## {title}' section")
    return match.group(1)


def code_blocks(text: str, language: str | None = None) -> list[CodeBlock]:
    blocks = [CodeBlock(m.group(1), m.group(2)) for m in _FENCE.finditer(text)]
    return [b for b in blocks if language is None or b.language == language]


def shell_commands(block: str) -> list[str]:
    """The commands of a `sh` block, one per entry: comment lines dropped, a command continued
    by a trailing backslash or an open quote kept whole (`-d '{...` over two lines)."""
    commands: list[str] = []
    pending = ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an unclosed quote: the command goes on on the next line
            continue
        commands.append(pending)
        pending = ""
    if pending:
        raise AssertionError(f"unfinished shell command in README: {pending!r}")
    return commands
