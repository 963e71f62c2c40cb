"""Reject signals: tell the line's PLC to throw a unit out.

A reject signal is anything with ``signal(unit)`` and ``close()``. The built-in ones (``modbus``,
``log``) are registered by name; a third party ships its own as a package with an entry point in
the group ``garment_qc.reject_signals``, whose object is called with the ``options`` mapping of its
config entry as keyword arguments and returns the signal::

    [project.entry-points."garment_qc.reject_signals"]
    siemens_s7 = "my_package.s7:S7Reject"

``signal`` raises TransientError to have the unit retried (briefly: a late reject throws out the
wrong garment, see ``max_age_s``), anything else to give it up. Each signal runs in its own output
thread, so a PLC that does not answer never slows the line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from edge.line.outputs.base import Output
from edge.line.outputs.config import (
    LogRejectConfig,
    OutputsConfig,
    PluginRejectConfig,
)
from edge.line.outputs.registry import (
    REJECT_SIGNALS,
    StationInfo,
    register_output,
    register_reject_signal,
)
from qc.overrides import ConfigError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "garment_qc.reject_signals"


@runtime_checkable
class RejectSignal(Protocol):
    def signal(self, unit: dict[str, Any]) -> None:
        """Signal that ``unit`` (the unit's JSON payload) must be rejected."""

    def close(self) -> None:
        """Release the connection; called once, on shutdown."""


class UnknownRejectSignal(ConfigError):
    """No built-in signal and no installed plugin has this type name."""


def plugin_factory(type_name: str) -> Callable[..., RejectSignal]:
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == type_name]
    if not found:
        installed = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        raise UnknownRejectSignal(
            f"unknown reject signal type {type_name!r}: built in are {sorted(REJECT_SIGNALS)}, "
            f"installed plugins ({ENTRY_POINT_GROUP}) are {installed or 'none'}"
        )
    return found[0].load()


def build_reject_signal(config: Any) -> RejectSignal:
    """The signal a config entry names: a built-in one, else a plugin."""
    if isinstance(config, PluginRejectConfig):
        factory = plugin_factory(config.type)
        try:
            made = factory(**config.options)
        except Exception as exc:  # bad options: say which entry, not a bare TypeError
            raise ConfigError(
                f"reject signal {config.output_name!r}: plugin {config.type!r} refused its options "
                f"{sorted(config.options)}: {type(exc).__name__}: {exc}"
            ) from exc
    else:
        made = REJECT_SIGNALS[config.type](config)
    if not isinstance(made, RejectSignal):
        raise ConfigError(
            f"reject signal {config.type!r} made a {type(made).__name__}, which lacks "
            "signal(unit) and close()"
        )
    return made


@register_reject_signal("log")
class LogRejectSignal:
    """A line in the log per rejected unit: commissioning a station before the PLC is wired."""

    def __init__(self, config: LogRejectConfig | None = None):
        self.signalled = 0

    def signal(self, unit: dict[str, Any]) -> None:
        self.signalled += 1
        log.info(
            "REJECT unit %s (station %s, verdict %s, score %.3f)",
            unit.get("id"), unit.get("station"), unit.get("verdict"), unit.get("score", 0.0),
        )

    def close(self) -> None:
        pass


class RejectSignalOutput(Output):
    """Runs one reject signal as an output: fails only (or also needs_review), fresh units only."""

    def __init__(self, config: Any, signal: RejectSignal):
        self.config = config
        self.signal = signal
        self.name = config.output_name
        self.target = f"reject signal {self.name}" + (
            f" ({describe()})" if callable(describe := getattr(signal, "describe", None)) else ""
        )
        self.retry = config.retry
        self.max_age_s = config.max_age_s
        self.queue_size = config.queue.size
        self._verdicts = {"fail"} if config.when == "fail" else {"fail", "needs_review"}

    def wants(self, unit: dict[str, Any]) -> bool:
        return unit.get("verdict") in self._verdicts

    def send(self, unit: dict[str, Any], body: bytes, stop: threading.Event) -> None:
        self.signal.signal(unit)

    def close(self) -> None:
        self.signal.close()


@register_output("reject")
def build_reject_outputs(config: OutputsConfig, _station: StationInfo) -> list[Output]:
    from edge.line.outputs import modbus  # noqa: F401  (registers the modbus signal)

    outputs: list[Output] = []
    try:
        for entry in config.reject_signals:
            outputs.append(RejectSignalOutput(entry, build_reject_signal(entry)))
    except Exception:
        for o in outputs:
            o.close()
        raise
    return outputs
