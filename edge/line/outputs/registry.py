"""Where output plugins register: ``@register_output(kind)`` builds a kind's outputs from the
config, ``@register_reject_signal(type)`` a built-in reject signal. The plugins import this module;
``build_outputs`` (edge.line.outputs.dispatcher) imports the plugins."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.line.outputs.base import Output
from edge.line.outputs.config import OutputsConfig
from edge.line.registry import Registry


@dataclass(frozen=True)
class StationInfo:
    """What builders may need to know about the station (an MQTT client id, for one)."""

    id: str
    line: str


Builder = Callable[[OutputsConfig, StationInfo], list[Output]]
OUTPUT_BUILDERS: Registry[Builder] = Registry("output kind")
register_output = OUTPUT_BUILDERS.register

# A reject signal's factory takes its entry's config model and returns a RejectSignal.
REJECT_SIGNALS: Registry[Callable[[Any], Any]] = Registry("reject signal type")
register_reject_signal = REJECT_SIGNALS.register
