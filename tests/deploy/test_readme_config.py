"""The README's configuration sketch is the shipped config.yaml, and the keys it lists beside
it carry the defaults the code has: a newcomer copies from there."""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

import yaml

from proxy.settings import Settings, parse_settings
from tests.deploy import readme
from tests.deploy.checkout import REPO


def configuration_blocks() -> list[str]:
    return [b.text for b in readme.code_blocks(readme.section("Configuration"), "yaml")]


def test_the_sketch_is_the_shipped_config_yaml():
    shipped, _others = configuration_blocks()
    assert shipped == (REPO / "config.yaml").read_text()


def test_the_other_keys_are_shown_at_their_defaults():
    _shipped, others = configuration_blocks()
    listed = yaml.safe_load(others)
    parsed, defaults = parse_settings(others, {}), Settings()
    paths = list(_scalar_paths(listed, ()))
    assert paths, "the block lists keys"
    for path in paths:
        assert _get(parsed, path) == _get(defaults, path), ".".join(path)


def test_every_setting_is_in_one_of_the_two_blocks():
    """The sketch is the shipped file and the other block its documented complement: a new
    setting must be shown in one of them (a whole mapping, like `providers`, counts as shown)."""
    shown = {
        path
        for block in configuration_blocks()
        for path in _scalar_paths(yaml.safe_load(block), ())
    }
    shown_prefixes = {path[:n] for path in shown for n in range(1, len(path) + 1)}
    missing = [".".join(p) for p in _setting_paths(Settings, ()) if p not in shown_prefixes]
    assert not missing, f"README 'Configuration' shows no {missing}"


def _setting_paths(cls: type, prefix: tuple[str, ...]):
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            yield from _setting_paths(kind, (*prefix, field.name))
        else:
            yield (*prefix, field.name)


def _scalar_paths(node: Any, prefix: tuple[str, ...]):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _scalar_paths(value, (*prefix, key))
    else:
        yield prefix


def _get(settings: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        settings = getattr(settings, key)
    return settings
