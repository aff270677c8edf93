"""compose.yaml read as Docker Compose would, for the forms it uses: `${VAR}` and
`${VAR:-default}` taken from an environment, durations like `45s` or `1m30s` in seconds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def load_compose(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The file with every `${...}` resolved from `environ` (empty: each default applies)."""
    return _resolve(yaml.safe_load(COMPOSE.read_text()), environ or {})


def variables_read(node: Any) -> set[str]:
    """Every `${VAR}` the raw file reads, anywhere in its values."""
    if isinstance(node, dict):
        return set().union(*(variables_read(v) for v in node.values()), set())
    if isinstance(node, list):
        return set().union(*(variables_read(v) for v in node), set())
    if isinstance(node, str):
        return {m.group(1) for m in _VARIABLE.finditer(node)}
    return set()


def duration_seconds(value: str) -> float:
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a compose duration: {value!r}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _resolve(node: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _resolve(value, environ) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, environ) for value in node]
    if isinstance(node, str):
        return _VARIABLE.sub(lambda m: environ.get(m.group(1)) or (m.group(2) or ""), node)
    return node
