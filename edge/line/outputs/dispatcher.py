"""The pipeline's ``on_unit`` hook: one payload per stored unit, offered to every output's queue.

Outputs are built by name from the ``outputs:`` config section through a small registry
(edge.line.outputs.registry), so a new kind of output is one module with one ``@register_output``
builder, imported by ``build_outputs``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from edge.line.outputs.base import Output, OutputWorker
from edge.line.outputs.config import OutputsConfig
from edge.line.outputs.payload import encode, unit_payload
from edge.line.outputs.registry import OUTPUT_BUILDERS, StationInfo
from edge.units import UnitRecord

log = logging.getLogger(__name__)


class OutputDispatcher:
    """Fans stored units out to the outputs. ``on_unit`` is safe to call from several pipelines."""

    def __init__(
        self,
        outputs: list[Output],
        *,
        links_base_url: str | None = None,
        drain_timeout_s: float = 5.0,
    ):
        names = [o.name for o in outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"output names must be unique, got {names}")
        self.workers = [OutputWorker(o) for o in outputs]
        self.links_base_url = links_base_url
        self.drain_timeout_s = drain_timeout_s
        self._started = False
        self._closed = False

    @property
    def names(self) -> list[str]:
        return [w.output.name for w in self.workers]

    def start(self) -> None:
        if not self._started:
            self._started = True
            for w in self.workers:
                w.start()

    def on_unit(self, _frame: Any, record: UnitRecord) -> None:
        """Called by the pipeline's writer after a unit is stored. Never raises, never blocks."""
        if not self.workers:
            return
        try:
            unit = unit_payload(record, links_base_url=self.links_base_url)
            body = encode(unit)
            for worker in self.workers:
                if worker.output.wants(unit):
                    worker.offer(unit, body)
        except Exception:  # the unit is stored; an output problem must not count as a unit error
            log.exception("unit %s could not be handed to the outputs", record.id)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {w.output.name: w.snapshot() for w in self.workers}

    def problems(self) -> list[str]:
        return [p for w in self.workers if (p := w.problem())]

    def close(self) -> None:
        """Give the outputs ``drain_timeout_s`` to send what is queued, then stop them."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + self.drain_timeout_s
        for w in self.workers:
            if self._started:
                w.close(deadline)
            else:
                w.output.close()


def build_outputs(config: OutputsConfig, station: StationInfo) -> OutputDispatcher:
    """Build every enabled output (none by default) and start their threads."""
    # Importing the modules registers their builders; done here, not at import of edge.line.outputs,
    # so a station with no outputs never loads paho or pymodbus.
    from edge.line.outputs import mqtt, reject, webhook  # noqa: F401

    outputs: list[Output] = []
    try:
        for kind, builder in OUTPUT_BUILDERS.items():
            outputs.extend(builder(config, station))
    except Exception:
        for o in outputs:
            o.close()
        raise
    dispatcher = OutputDispatcher(
        outputs, links_base_url=config.links_base_url, drain_timeout_s=config.drain_timeout_s
    )
    dispatcher.start()
    if outputs:
        log.info("outputs: %s", ", ".join(o.target for o in outputs))
    return dispatcher
