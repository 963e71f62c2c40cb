"""Reject signals: the Modbus one against pymodbus's own TCP server acting as the PLC, the log one,
and a third-party plugin found through the ``garment_qc.reject_signals`` entry points."""

from __future__ import annotations

import asyncio
import logging
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from edge.line.outputs.config import OutputsConfig
from edge.line.outputs.dispatcher import StationInfo, build_outputs
from edge.line.outputs.reject import ENTRY_POINT_GROUP, UnknownRejectSignal
from tests.edge.conftest import T0
from tests.edge.mqtt_broker import free_port, wait_until

STATION = StationInfo("station-1", "line-1")
COIL = 5


class Plc:
    """pymodbus's TCP server with 64 coils, in a thread with its own event loop, on a free port."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from pymodbus.datastore import (
            ModbusDeviceContext,
            ModbusSequentialDataBlock,
            ModbusServerContext,
        )
        from pymodbus.server import ModbusTcpServer

        context = ModbusServerContext(
            devices=ModbusDeviceContext(co=ModbusSequentialDataBlock(1, [False] * 64)), single=True
        )
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve():
            self._server = ModbusTcpServer(context, address=("127.0.0.1", self.port))
            ready.set()
            await self._server.serve_forever()

        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(serve(),), daemon=True
        )
        self._thread.start()
        assert ready.wait(10)
        wait_until(lambda: self.read_coil() is not None, what="the PLC to answer")

    def read_coil(self, address: int = COIL) -> bool | None:
        """The coil as an HMI would read it over Modbus; None while the PLC does not answer."""
        from pymodbus.client import ModbusTcpClient

        client = ModbusTcpClient("127.0.0.1", port=self.port, timeout=0.5, retries=0)
        try:
            if not client.connect():
                return None
            answer = client.read_coils(address, count=1)
            return None if answer.isError() else bool(answer.bits[0])
        except Exception:
            return None
        finally:
            client.close()

    def stop(self) -> None:
        if self._thread is not None:
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(10)
            self._thread.join(10)
            self._loop.close()
            self._thread = None


class CoilWatcher:
    """Polls the coil every few ms and keeps each change: (monotonic time, value)."""

    def __init__(self, plc: Plc):
        from pymodbus.client import ModbusTcpClient

        self.changes: list[tuple[float, bool]] = []
        self._client = ModbusTcpClient("127.0.0.1", port=plc.port, timeout=0.5, retries=0)
        self._client.connect()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        last = None
        while not self._stop.is_set():
            answer = self._client.read_coils(COIL, count=1)
            value = bool(answer.bits[0])
            if value != last:
                self.changes.append((time.monotonic(), value))
                last = value
            time.sleep(0.005)

    def values(self) -> list[bool]:
        return [v for _, v in self.changes]

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self._client.close()


@pytest.fixture
def plc():
    p = Plc()
    p.start()
    yield p
    p.stop()


def reject_outputs(*entries: dict):
    return build_outputs(
        OutputsConfig(reject_signals=list(entries), drain_timeout_s=2), STATION
    )


def modbus_entry(port: int, **kw) -> dict:
    return {"type": "modbus", "host": "127.0.0.1", "port": port, "address": COIL,
            "pulse_ms": 150, "timeout_s": 0.5, **kw}


def test_a_failed_unit_pulses_the_coil_and_a_passed_one_does_not(plc, add_unit):
    watcher = CoilWatcher(plc)
    outputs = reject_outputs(modbus_entry(plc.port))
    try:
        wait_until(lambda: watcher.values() == [False], what="the watcher's first read")
        outputs.on_unit(None, add_unit(T0, seed=1, verdict="pass"))
        outputs.on_unit(None, add_unit(T0 + timedelta(seconds=1), seed=2, verdict="fail"))
        wait_until(lambda: watcher.values() == [False, True, False], what="set, then reset")
        (_, _), (set_at, _), (reset_at, _) = watcher.changes
        assert reset_at - set_at >= 0.15 * 0.8  # held about pulse_ms (polling granularity aside)
        assert outputs.snapshot()["reject-modbus"] == {
            "sent": 1, "failed": 0, "dropped": 0, "queued": 0, "problem": None
        }
    finally:
        outputs.close()
        watcher.close()
    assert plc.read_coil() is False


def test_plc_away_is_named_in_health_and_the_signal_reconnects_when_it_returns(add_unit):
    plc = Plc()
    outputs = reject_outputs(modbus_entry(plc.port, retry={"tries": 2, "initial_s": 0.05}))
    try:
        outputs.on_unit(None, add_unit(T0, seed=1, verdict="fail"))
        wait_until(lambda: outputs.snapshot()["reject-modbus"]["failed"] == 1, what="given up")
        problem = outputs.problems()[0]
        assert problem.startswith(
            f"reject signal reject-modbus (modbus PLC 127.0.0.1:{plc.port} unit 1 coil {COIL}) "
            "unreachable since "
        )
        plc.start()
        watcher = CoilWatcher(plc)
        try:
            outputs.on_unit(None, add_unit(T0 + timedelta(seconds=1), seed=2, verdict="fail"))
            wait_until(lambda: watcher.values() == [False, True, False], what="a pulse")
        finally:
            watcher.close()
        wait_until(lambda: outputs.problems() == [], what="health to clear")
        figures = outputs.snapshot()["reject-modbus"]
        assert (figures["sent"], figures["failed"]) == (1, 1)
    finally:
        outputs.close()
        plc.stop()


def test_a_late_reject_is_not_signalled(plc, add_unit):
    """A unit the PLC could not take in time is given up: the garment under the ejector now is
    another one."""
    outputs = reject_outputs(
        modbus_entry(plc.port, pulse_ms=400, max_age_s=0.2, queue={"size": 10})
    )
    try:
        for i in range(3):  # the first pulse (0.4 s) outlasts the others' 0.2 s of freshness
            outputs.on_unit(None, add_unit(T0 + timedelta(seconds=i), seed=i, verdict="fail"))
        wait_until(
            lambda: outputs.snapshot()["reject-modbus"]["failed"] == 2, what="2 too late"
        )
        assert outputs.snapshot()["reject-modbus"]["sent"] == 1
    finally:
        outputs.close()


def test_the_log_signal_writes_a_line_per_fail(add_unit, caplog):
    caplog.set_level(logging.INFO, logger="edge.line.outputs.reject")
    outputs = reject_outputs({"type": "log", "when": "fail_or_review"})
    try:
        units = [add_unit(T0 + timedelta(seconds=i), seed=i, verdict=v)
                 for i, v in enumerate(["pass", "fail", "needs_review"])]
        for u in units:
            outputs.on_unit(None, u)
        wait_until(lambda: outputs.snapshot()["reject-log"]["sent"] == 2, what="2 signals")
    finally:
        outputs.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("REJECT")]
    assert [line.split()[2] for line in lines] == [units[1].id, units[2].id]


PLUGIN = textwrap.dedent('''
    SIGNALLED = []

    class TowerLight:
        def __init__(self, colour):
            self.colour = colour

        def signal(self, unit):
            SIGNALLED.append((self.colour, unit["id"]))

        def close(self):
            SIGNALLED.append((self.colour, "closed"))
''')


def install_plugin(folder: Path, monkeypatch) -> None:
    """A package installed the way pip would: a module and a dist-info with an entry point."""
    (folder / "qc_tower_light.py").write_text(PLUGIN)
    info = folder / "qc_tower_light-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: qc-tower-light\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ntower_light = qc_tower_light:TowerLight\n"
    )
    monkeypatch.syspath_prepend(str(folder))


def test_a_plugin_from_the_entry_point_group(tmp_path, monkeypatch, add_unit):
    install_plugin(tmp_path, monkeypatch)
    outputs = reject_outputs({"type": "tower_light", "options": {"colour": "red"}})
    record = add_unit(T0, verdict="fail")
    try:
        assert outputs.names == ["reject-tower_light"]
        outputs.on_unit(None, record)
        wait_until(lambda: outputs.snapshot()["reject-tower_light"]["sent"] == 1, what="signal")
    finally:
        outputs.close()
    import qc_tower_light

    assert qc_tower_light.SIGNALLED == [("red", record.id), ("red", "closed")]


def test_an_unknown_type_names_what_exists(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch)
    with pytest.raises(UnknownRejectSignal) as refused:
        reject_outputs({"type": "siemens_s7"})
    message = str(refused.value)
    assert "'siemens_s7'" in message and "'log', 'modbus'" in message and "tower_light" in message
    from qc.overrides import ConfigError  # what `qc edge` prints as a one-line error

    with pytest.raises(ConfigError, match="plugin 'tower_light' refused its options \\['color'\\]"):
        reject_outputs({"type": "tower_light", "options": {"color": "red"}})


def test_config_is_strict():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="address"):
        OutputsConfig.model_validate({"reject_signals": [{"type": "modbus", "host": "plc"}]})
    with pytest.raises(ValidationError, match="extra"):
        OutputsConfig.model_validate(
            {"reject_signals": [{"type": "modbus", "host": "plc", "address": 1, "coil": 2}]}
        )
