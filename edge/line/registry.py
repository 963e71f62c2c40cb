"""One small registry for the line's plugins (sources, triggers, outputs, reject signals).

A plugin module registers itself with ``@REGISTRY.register(name)``; the module that builds the
plugins from the config imports the plugin modules, so the registry never imports its plugins and
no plugin imports its builder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """Named factories of one kind of plugin; ``kind`` names it in errors ("source type")."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        def wrap(factory: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self[name] = factory
            return factory

        return wrap
