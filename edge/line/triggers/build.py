"""``build_trigger``: a camera's trigger config -> its trigger (every mode registered here)."""

from __future__ import annotations

from edge.line.triggers import external, presence  # noqa: F401  (each registers its mode)
from edge.line.triggers.base import TRIGGERS, Trigger, TriggerContext
from edge.line.triggers.config import FrameTriggerConfig


def build_trigger(config, context: TriggerContext) -> Trigger:
    config = config if config is not None else FrameTriggerConfig()
    return TRIGGERS[config.mode](config, context)
