"""The image folder's disk fills up: no half-written unit, the decided units are held and retried,
/healthz and /metrics say so, and everything held is written once space returns. A stop while the
disk still refuses gives those units up after a short grace and says exactly how many (exit code 3).

Two disks: a real 2 MB tmpfs where this machine lets the test mount one (root with CAP_SYS_ADMIN),
and a simulated ENOSPC at the named seam ``edge.storage.files.write_unit_file`` that always runs.
"""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

import edge.storage.files
from edge.api.app import ModelInfo, Services, create_app
from edge.config import EdgeConfig
from edge.line.pipeline import Pipeline
from edge.line.sources import Frame, SourceStatus
from edge.storage.files import UnitFilesNotWritten
from edge.storage.spool import Spool
from edge.storage.store import UnitStore
from qc.inference import Inferencer
from tests.edge.pipeline_helpers import make_pipeline

SMALL = (96, 128)
N_FRAMES = 24


@pytest.fixture(scope="module")
def inferencer(tiny_model_dir):
    return Inferencer(tiny_model_dir, threads=1)


class GatedSource:
    """Delivers ``n`` frames at ``fps``; the first ``before_gate`` at once, the rest after
    ``gate`` is set, so the test decides when the line runs into the full disk."""

    def __init__(self, n: int, fps: float, gate: threading.Event, before_gate: int = 0):
        self.status = SourceStatus()
        self.n, self.period_s, self.gate, self.before_gate = n, 1.0 / fps, gate, before_gate
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 256, (*SMALL, 3), dtype=np.uint8) for _ in range(4)]

    def describe(self):
        return {"type": "gated"}

    def frames(self, stop):
        self.status.delivering()
        for i in range(self.n):
            if i == self.before_gate:
                self.gate.wait(30)
            if stop.is_set():
                break
            yield Frame(i, self.images[i % 4], datetime.now(timezone.utc), time.monotonic())
            time.sleep(self.period_s)
        self.status.finished()


def _wait(predicate, timeout_s=20.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _metrics(client) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    values = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            values[s.name] = s.value
    return values


def _unit_files_on_disk(data_dir: Path) -> set[str]:
    units = data_dir / "units"
    return {str(p.relative_to(data_dir)) for p in units.rglob("*") if p.is_file()} if units.exists() else set()


def _assert_consistent(store: UnitStore, data_dir: Path) -> None:
    """Every row has its image and heatmap values, readable; no other file lies in units/."""
    expected = set()
    for unit in store.iter_units():
        folder = unit.original_path.rsplit("/", 1)[0]
        expected |= {unit.original_path, f"{folder}/heatmap-values.png"}
        assert cv2.imread(str(data_dir / unit.original_path)) is not None
        assert cv2.imread(str(data_dir / folder / "heatmap-values.png"), 0).shape == SMALL
    assert _unit_files_on_disk(data_dir) == expected  # no half-written unit, no orphan
    assert not list(data_dir.rglob("*.tmp"))


def _run_line_into_a_full_disk(store: UnitStore, inferencer, fill, free, *, real_disk: bool) -> None:
    """Units flow, the disk fills, the line keeps deciding while units are held, space returns."""
    data_dir = store.data_dir
    gate = threading.Event()
    pipe = make_pipeline(GatedSource(N_FRAMES, fps=40, gate=gate, before_gate=3), inferencer, store,
                         "station.id=s", "station.line=l", "pipeline.queue_size=2")
    pipe.STORAGE_RETRY_INITIAL_S, pipe.STORAGE_RETRY_MAX_S = 0.02, 0.2
    model = ModelInfo(inferencer.name, inferencer.version, str(inferencer.model_dir), {"image": 0.5})
    app = create_app(Services(config=EdgeConfig(), store=store, pipeline=pipe, model=model))
    with TestClient(app) as client:
        pipe.start()
        try:
            _wait(lambda: store.count() == 3, what="three units before the disk fills")
            assert client.get("/healthz").json()["problems"] == []
            fill()
            gate.set()
            _wait(lambda: pipe.snapshot()["storage"]["failing"], what="the writer to meet the full disk")
            _wait(lambda: pipe.snapshot()["frames_read"] == N_FRAMES, what="the source to deliver all")
            health = client.get("/healthz").json()
            problem = next(p for p in health["problems"] if p.startswith("disk full"))
            assert health["status"] == "degraded"
            assert problem.startswith(f"disk full: {data_dir}, ")
            assert " MB free; units are held and retried" in problem, problem
            metrics = _metrics(client)
            assert metrics["qc_storage_errors_total"] >= 1
            assert metrics["qc_storage_held_units"] >= 1
            if real_disk:
                assert metrics["qc_disk_free_bytes"] < 64 * 1024
                assert f", 0 MB free;" in problem
            else:
                assert metrics["qc_disk_free_bytes"] > 0
            snap = pipe.snapshot()
            assert snap["frames_dropped"] > 0  # inference waited on the writer; capture dropped
            assert store.count() == 3 and snap["errors"] == 0  # held, not stored, not lost
            free()
            assert pipe.wait(timeout_s=30), "held units must be written once space returns"
        finally:
            gate.set()
            if snap_failing(pipe):  # a failed assertion above: let the writer finish, then stop
                free()
            pipe.stop(timeout_s=10)
        health = client.get("/healthz").json()
        assert not any("disk" in p for p in health["problems"]), health["problems"]
    snap = pipe.snapshot()
    assert not snap["storage"]["failing"] and snap["errors"] == 0
    # Every frame read is a stored unit or a counted drop: the held ones were all written.
    assert store.count() + snap["frames_dropped"] == N_FRAMES
    assert sum(snap["units_by_verdict"].values()) == store.count()
    _assert_consistent(store, data_dir)


def snap_failing(pipe: Pipeline) -> bool:
    return pipe.snapshot()["storage"]["failing"]


# -- simulated ENOSPC (always runs) -------------------------------------------------------------


class SimulatedFullDisk:
    """Replaces the seam edge.storage.files.write_unit_file: while full, a unit's JPEG is still written
    (it fits) and its heatmap is refused with ENOSPC, so each try leaves a real half unit that
    write_unit_files must clean up."""

    def __init__(self, monkeypatch):
        self.full = False
        self.refused = 0
        real = edge.storage.files.write_unit_file

        def write(path: Path, data: bytes) -> None:
            if self.full and path.name != edge.storage.files.ORIGINAL_NAME:
                self.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            real(path, data)

        monkeypatch.setattr(edge.storage.files, "write_unit_file", write)


def test_a_refused_heatmap_leaves_no_half_unit(store, new_unit, monkeypatch):
    disk = SimulatedFullDisk(monkeypatch)
    disk.full = True
    image = np.zeros((*SMALL, 3), np.uint8)
    with pytest.raises(UnitFilesNotWritten) as caught:
        store.add(new_unit(datetime.now(timezone.utc)), original_rgb=image, heatmap=np.zeros(SMALL, np.float32))
    assert caught.value.disk_full and caught.value.errno == errno.ENOSPC
    assert str(store.data_dir) in str(caught.value)
    assert disk.refused == 1 and store.count() == 0
    assert _unit_files_on_disk(store.data_dir) == set()
    assert not list((store.data_dir / "units").glob("*/*"))  # the unit's folder went too


def test_simulated_full_disk_holds_units_and_writes_them_when_space_returns(
    store, inferencer, monkeypatch
):
    disk = SimulatedFullDisk(monkeypatch)

    def fill():
        disk.full = True

    def free():
        disk.full = False

    _run_line_into_a_full_disk(store, inferencer, fill, free, real_disk=False)
    assert disk.refused >= 2  # retried, not given up


# -- stopping while the disk is full -------------------------------------------------------------


def test_a_stop_with_the_disk_full_gives_up_the_held_units_after_the_grace_and_counts_each(
    store, inferencer, monkeypatch
):
    disk = SimulatedFullDisk(monkeypatch)
    gate = threading.Event()
    pipe = make_pipeline(GatedSource(N_FRAMES, fps=40, gate=gate, before_gate=3), inferencer, store,
                         "station.id=s", "station.line=l", "pipeline.queue_size=2")
    pipe.STORAGE_RETRY_INITIAL_S, pipe.STORAGE_RETRY_MAX_S = 0.02, 0.2
    pipe.STORAGE_STOP_GRACE_S = 0.5
    pipe.start()
    try:
        _wait(lambda: store.count() == 3, what="three units before the disk fills")
        disk.full = True
        gate.set()
        _wait(lambda: pipe.snapshot()["frames_read"] == N_FRAMES, what="the source to deliver all")
        _wait(lambda: pipe.snapshot()["storage"]["held"] >= 3, what="the writer and queue to fill")
        asked = time.monotonic()
        stopped = pipe.stop(timeout_s=8)
        took_s = time.monotonic() - asked
    finally:
        gate.set()
        disk.full = False  # a failed assertion: let the writer finish before the store closes
        pipe.stop(timeout_s=10)
    assert stopped, "the stop waited on units the disk kept refusing"
    assert took_s < pipe.STORAGE_STOP_GRACE_S + 3, took_s
    snap = pipe.snapshot()
    assert snap["errors"] == 0 and snap["storage"]["held"] == 0
    assert store.count() == 3 == sum(snap["units_by_verdict"].values())
    # Every frame read is a stored unit, a counted drop or a unit counted as not stored.
    assert snap["units_not_stored"] >= 3
    assert store.count() + snap["frames_dropped"] + snap["units_not_stored"] == N_FRAMES
    # Given up means nothing of them is left: no file, no half unit, no spooled row without files.
    _assert_consistent(store, store.data_dir)
    assert store.spool.pending == 0 and store.spool.segments() == []


def test_a_stop_that_times_out_on_a_hung_disk_names_every_decided_unit_it_leaves(
    store, inferencer, monkeypatch, caplog
):
    from edge.main import log_stopped, stop_all

    hung, release = threading.Event(), threading.Event()
    real = edge.storage.files.write_unit_file

    def write(path: Path, data: bytes) -> None:  # a write that never returns (a dead NFS mount)
        if hung.is_set():
            release.wait(30)
        real(path, data)

    monkeypatch.setattr(edge.storage.files, "write_unit_file", write)
    gate = threading.Event()
    pipe = make_pipeline(GatedSource(N_FRAMES, fps=40, gate=gate, before_gate=3), inferencer, store,
                         "station.id=s", "station.line=l", "pipeline.queue_size=2")
    pipe.start()
    try:
        _wait(lambda: store.count() == 3, what="three units before the disk hangs")
        hung.set()
        gate.set()
        # Settled: the writer hangs on one, two wait in its queue, inference holds one decided.
        _wait(lambda: pipe.snapshot()["frames_read"] == N_FRAMES, what="the source to deliver all")
        _wait(lambda: pipe.snapshot()["storage"]["held"] == 4 and pipe.snapshot()["queued"] == 2,
              what="the queues to fill")
        assert not stop_all([pipe], 0.5)
        snap = pipe.snapshot()
        caplog.set_level("INFO", logger="edge")
        not_stored = log_stopped(snap, drained=False)
    finally:
        release.set()
        gate.set()
        pipe.stop(timeout_s=10)
    stored = sum(snap["units_by_verdict"].values())
    assert not_stored == 4 and stored == 3
    # Every frame read is stored, dropped, decided and not stored, or still waiting for inference.
    assert snap["frames_read"] == stored + snap["frames_dropped"] + not_stored + snap["queued"]
    assert (f"stopped: camera cam-1: {N_FRAMES} frames read, {snap['frames_dropped']} dropped, "
            f"units {snap['units_by_verdict']}; 4 decided unit(s) NOT stored "
            f"(2 frames still queued after 60 s)") in caplog.text


def test_qc_edge_stopped_while_the_disk_is_full_exits_3_saying_how_many_units_were_not_stored(
    tmp_path, tiny_model_dir, monkeypatch, caplog
):
    import re
    import signal
    import sqlite3

    from edge import main as service
    from tests.edge.test_main import REPO, _free_port

    disk = SimulatedFullDisk(monkeypatch)
    monkeypatch.setattr(Pipeline, "STORAGE_RETRY_INITIAL_S", 0.02)
    monkeypatch.setattr(Pipeline, "STORAGE_RETRY_MAX_S", 0.2)
    monkeypatch.setattr(Pipeline, "STORAGE_STOP_GRACE_S", 0.5, raising=False)
    monkeypatch.setattr(service, "DRAIN_TIMEOUT_S", 10.0)  # the bound when writes hang instead
    data_dir = tmp_path / "var"
    asked, returned = [], threading.Event()

    def fill_the_disk_then_stop():
        def rows():
            try:
                with sqlite3.connect(data_dir / "qc.db") as db:
                    return db.execute("SELECT count(*) FROM units").fetchone()[0]
            except sqlite3.Error:
                return 0

        try:
            _wait(lambda: rows() >= 3, timeout_s=60, what="three units stored")
            disk.full = True
            _wait(lambda: disk.refused >= 4, what="the writer to hold units")
        finally:  # stopped in any case: a failed wait must not leave the service running
            asked.append(time.monotonic())
            if not returned.is_set():
                os.kill(os.getpid(), signal.SIGTERM)  # as systemd stops the station

    caplog.set_level("INFO", logger="edge")
    operator = threading.Thread(target=fill_the_disk_then_stop, daemon=True)
    operator.start()
    try:
        code = service.run_edge(REPO / "configs/edge/default.yaml", [
            f"api.port={_free_port()}", f"storage.data_dir={data_dir}",
            f"model.dir={tiny_model_dir}", "source.fps=20", "source.size_px=[96,128]",
            "pipeline.inference_threads=1",
        ])
    finally:
        returned.set()
    took_s = time.monotonic() - asked[0]
    operator.join(1)
    disk.full = False

    log = caplog.text
    assert code == 3, log  # service.EXIT_UNITS_NOT_STORED
    assert took_s < 8, f"the stop took {took_s:.1f} s"  # the grace, not DRAIN_TIMEOUT_S
    found = re.search(r"stopped: camera cam-1: (\d+) frames read, (\d+) dropped, units (\{.*?\}); "
                      r"(\d+) decided unit\(s\) NOT stored", log)
    assert found, log
    read, dropped, units, not_stored = found.groups()
    stored = sum(eval(units).values())  # the dict as logged
    with sqlite3.connect(data_dir / "qc.db") as db:
        assert db.execute("SELECT count(*) FROM units").fetchone()[0] == stored
    assert int(not_stored) >= 1
    assert int(read) == int(dropped) + stored + int(not_stored)  # exactly the ones missing
    assert "still queued" not in log


# -- a real, small filesystem (where mount is permitted) ----------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs, or a skip saying why there is none."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run mount here ({exc}); the simulated ENOSPC test covers the writer")
    if done.returncode != 0:
        pytest.skip(f"mounting a 2 MB tmpfs is not permitted here ({done.stderr.strip()}); "
                    "the simulated ENOSPC test covers the writer")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=10)


def _fill(path: Path) -> None:
    """Write zeros until the filesystem says ENOSPC."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 4096, b"\0"):
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)


def test_real_full_tmpfs_holds_units_and_writes_them_when_space_returns(
    small_disk, tmp_path, inferencer, new_unit
):
    # The database lives elsewhere: this is the image folder's disk filling up.
    store = UnitStore(f"sqlite:///{tmp_path / 'qc.db'}", small_disk)
    filler = small_disk / "filler.bin"
    try:
        _run_line_into_a_full_disk(
            store, inferencer, lambda: _fill(filler), filler.unlink, real_disk=True
        )
        with pytest.raises(UnitFilesNotWritten) as caught:  # and the error is the real one
            _fill(filler)
            store.add(new_unit(datetime.now(timezone.utc)), original_rgb=np.zeros((*SMALL, 3), np.uint8),
                      heatmap=np.zeros(SMALL, np.float32))
        assert caught.value.disk_full
        filler.unlink()
        _assert_consistent(store, small_disk)
    finally:
        store.close()


def test_real_full_tmpfs_refuses_spool_appends_without_leaving_a_file(small_disk):
    from tests.edge.storage.test_spool import spooled

    spool = Spool(small_disk / "spool")
    spool.append(spooled(0))
    _fill(small_disk / "filler.bin")
    acknowledged = 1
    with pytest.raises(OSError) as caught:  # the segment's last page fills, then the disk refuses
        for i in range(1, 1000):
            spool.append(spooled(i))
            acknowledged += 1
    assert caught.value.errno == errno.ENOSPC
    (segment,) = spool.segments()
    before = segment.read_bytes()
    assert before.endswith(b"\n")  # whole records only: the refused one's torn tail is cut off
    for i in range(17):  # each retry would start a fresh segment
        with pytest.raises(OSError):
            spool.append(spooled(2000 + i))
    assert sorted(p.name for p in spool.folder.iterdir()) == [segment.name]
    assert segment.read_bytes() == before
    (small_disk / "filler.bin").unlink()
    spool.append(spooled(3000))
    assert Spool(small_disk / "spool").pending == acknowledged + 1
