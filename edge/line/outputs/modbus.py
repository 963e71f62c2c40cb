"""Modbus TCP reject signal (pymodbus 3.x): set a PLC coil for ``pulse_ms``, then reset it.

The connection is opened on the first reject and kept; a failed request drops it and raises, so
the output retries (briefly) on a fresh connection. A coil that could not be reset is reset again
on the next request and on close: a coil left high would keep the line's ejector firing.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import Any

from edge.line.outputs.base import TransientError, Unreachable
from edge.line.outputs.config import ModbusRejectConfig
from edge.line.outputs.registry import register_reject_signal

log = logging.getLogger(__name__)


@register_reject_signal("modbus")
class ModbusRejectSignal:
    def __init__(self, config: ModbusRejectConfig):
        from pymodbus.client import ModbusTcpClient

        self.config = config
        self.client = ModbusTcpClient(
            config.host, port=config.port, timeout=config.timeout_s, retries=0
        )
        # pymodbus renamed the unit-id keyword from `slave` to `device_id` in 3.10.
        params = inspect.signature(self.client.write_coil).parameters
        self._unit_kw = "device_id" if "device_id" in params else "slave"
        self._lock = threading.Lock()
        self._coil_high = False
        self.pulses = 0

    def describe(self) -> str:
        c = self.config
        return f"modbus PLC {c.host}:{c.port} unit {c.device_id} coil {c.address}"

    def signal(self, unit: dict[str, Any]) -> None:
        with self._lock:
            self._write(True)
            time.sleep(self.config.pulse_ms / 1000.0)
            self._write(False)
            self.pulses += 1

    def _write(self, value: bool) -> None:
        from pymodbus.exceptions import ModbusException

        try:
            if not self.client.connected and not self.client.connect():
                raise Unreachable(f"{self.describe()} unreachable")
            result = self.client.write_coil(
                self.config.address, value, **{self._unit_kw: self.config.device_id}
            )
        except (ModbusException, OSError) as exc:
            self.client.close()
            raise Unreachable(f"{self.describe()}: {exc}") from None
        if result.isError():
            raise TransientError(f"{self.describe()} refused the write: {result}")
        self._coil_high = value

    def close(self) -> None:
        with self._lock:
            if self._coil_high:
                try:
                    self._write(False)
                except Exception as exc:
                    log.error("%s: the reject coil may still be set: %s", self.describe(), exc)
            self.client.close()
