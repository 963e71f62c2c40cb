"""Dotted ``key=value`` command-line overrides applied to a config mapping before validation.

The merged mapping is validated by the same strict pydantic model as the file, so a typo in an
override fails exactly like a typo in the YAML: naming the key.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the problem."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its key path and a YAML-parsed value (``8001`` -> int)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. api.port=8001)")
    parts = key.strip().split(".")
    if any(not p for p in parts):
        raise ConfigError(f"override {text!r} has an empty key segment")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {exc}") from exc
    return parts, value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a deep copy of ``data`` with each dotted override set (intermediate dicts created)."""
    merged: dict[str, Any] = copy.deepcopy(dict(data))
    for text in overrides:
        parts, value = parse_override(text)
        node = merged
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return merged


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a mapping at the top level")
    return data


def format_validation_error(source: str, exc: Exception) -> str:
    """Turn a pydantic ValidationError into one readable message naming each bad key."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"{source}: {exc}"
    lines = []
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        kind = err.get("type", "")
        msg = "unknown key" if kind == "extra_forbidden" else err.get("msg", "invalid")
        lines.append(f"  {loc}: {msg}")
    return f"{source} is invalid:\n" + "\n".join(lines)
