"""Capture -> bounded queue -> inference worker -> verdict -> writer (render + store).

Frames are checked before they cost an inference: empty or malformed arrays and frames of the wrong
size are skipped at capture, frames that waited too long (stale) when the worker takes them; each is
counted with its reason, beside what the source itself could not decode.

Capture never blocks on inference: when the worker falls behind, the oldest waiting frame is
dropped and counted (a stale panel is worth less than the one now under the camera). Rendering
and storing run in their own thread, so PNG encoding and fsyncs overlap the next inference instead
of adding to it. Stopping ends capture first, then lets the workers drain what is already queued,
so no captured unit that made it into the queue is lost on a clean shutdown.

A disk that refuses a unit's files (full, I/O error) makes the writer hold the unit and retry it
until the disk takes it. Once a stop is asked it retries for ``STORAGE_STOP_GRACE_S`` more, then
gives up each decided unit the disk still refuses (one try each), so the station can exit: those
are counted in ``units_not_stored`` and logged, never dropped silently. A unit given up leaves
nothing behind: its row is neither inserted nor spooled without its files.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from edge.config import CameraConfig, PipelineConfig, StationConfig
from edge.line.defect_grading import DefectGrading
from edge.line.sources import Frame, FrameSource, SourceStatus
from edge.line.triggers.base import FrameTrigger, Trigger, TriggerError
from edge.storage.files import StorageStatus
from edge.storage.store import UnitStore
from edge.units import NewUnit, UnitRecord
from qc.decision import Decision, VerdictRules, decide
from qc.inference import InferenceResult
from qc.render import heatmap_to_grey

log = logging.getLogger(__name__)


class InferencerLike(Protocol):
    card: Any
    name: str
    version: str

    def infer(self, image): ...


INFERENCE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LatencyHistogram:
    """Counts per upper bound (not cumulative; the last slot is +Inf) and their sum.

    Not thread-safe: the pipeline updates it under its lock."""

    def __init__(self, bounds_s: tuple[float, ...] = INFERENCE_BUCKETS_S):
        self.bounds_s = bounds_s
        self.counts = [0] * (len(bounds_s) + 1)
        self.sum_s = 0.0

    def observe(self, seconds: float) -> None:
        slot = next((i for i, b in enumerate(self.bounds_s) if seconds <= b), len(self.bounds_s))
        self.counts[slot] += 1
        self.sum_s += seconds

    def snapshot(self) -> dict[str, Any]:
        return {"bounds_s": list(self.bounds_s), "counts": list(self.counts), "sum_s": self.sum_s}


def frame_problem(image: Any, expect_size_px: tuple[int, int] | None) -> str | None:
    """Why a frame cannot be inspected (the reason counted in metrics), or None when it can."""
    if image is None or not isinstance(image, np.ndarray) or image.size == 0:
        return "empty"
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        return "malformed"
    if expect_size_px is not None and tuple(image.shape[:2]) != tuple(expect_size_px):
        return "wrong_size"
    return None


class UnitNotStored(Exception):
    """The writer gave up a decided unit: the disk still refused it when the stop's grace ended."""


@dataclass(frozen=True)
class _Decided:
    """A unit whose verdict is made and which waits to be rendered and stored."""

    frame: Frame
    result: InferenceResult
    decision: Decision
    dequeued_mono: float
    decided_mono: float
    decided_at: datetime
    model_name: str
    model_version: str


class Pipeline:
    """One camera's line. Its settings come as the station config's parts it reads (the station,
    the camera, the pipeline section and the verdict rules); the arguments beside them are the
    collaborators it works with, built by the caller (edge.services.build_pipeline)."""

    def __init__(
        self,
        source: FrameSource,
        inferencer: InferencerLike,
        store: UnitStore,
        *,
        station: StationConfig,
        camera: CameraConfig,
        settings: PipelineConfig,
        rules: VerdictRules,
        trigger: Trigger | None = None,
        grading: DefectGrading | None = None,
        on_unit: Callable[[Frame, UnitRecord], None] | None = None,
    ):
        # One writer keeps units stored (and on_unit called) in verdict order. More overlap disk
        # waits on slow storage; on a 2-core station they measured no gain (CPU-bound encoding).
        self.writer_threads = settings.writer_threads
        self.source = source
        self.camera = camera.id
        # Turns camera frames into units; the default makes every frame a unit.
        self.trigger: Trigger = trigger if trigger is not None else FrameTrigger()
        self.inferencer = inferencer
        self.store = store
        self.station_id = station.id
        self.line = station.line
        self.px_per_mm = station.px_per_mm
        self.rules = rules
        # Types (with a classifier) and classes for a failed unit's defects; without one given,
        # every region is a "defect" of the default class (major).
        self.grading = grading or DefectGrading()
        self.on_unit = on_unit
        self.expect_size_px = camera.source.expect_size_px
        self.max_frame_age_s = camera.source.max_frame_age_s
        self.source_status: SourceStatus = getattr(source, "status", None) or SourceStatus()
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=settings.queue_size)
        # Decided units wait here for rendering and storage. It never drops: a verdict, once made,
        # is recorded; when storage falls behind, inference waits and capture drops (counted).
        self._decided: queue.Queue[_Decided | None] = queue.Queue(maxsize=settings.queue_size)
        self._stop_capture = threading.Event()
        self._stop_asked_mono: float | None = None  # when the grace for refused units began
        self._capture_done = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.frames_read = 0
        self.frames_dropped = 0
        self.frames_invalid: Counter[str] = Counter()
        self.inference_s = LatencyHistogram()
        self.errors = 0
        self.units_by_verdict: Counter[str] = Counter()
        self.units_not_stored = 0  # decided, then given up or failed before they were stored
        self.last_error: str | None = None
        self.last_error_mono: float | None = None
        self.source_error: str | None = None
        self.last_timings: dict[str, float] = {}
        self.started_at: datetime | None = None
        # The disk as the writer last found it (full, failing, fine), for /healthz and /metrics.
        self.storage = StorageStatus(store.data_dir)
        # Decided units not yet stored nor given up: queued for the writer, held by it, or in the
        # inference thread's hand while the writer's queue is full. Exact, so a stop that times
        # out can say how many decided units it leaves unstored.
        self._unwritten = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("pipeline already started")
        self.started_at = datetime.now(timezone.utc)
        self._threads = [
            threading.Thread(target=self._capture_loop, name=f"edge-capture-{self.camera}", daemon=True),
            threading.Thread(target=self._inference_loop, name=f"edge-inference-{self.camera}", daemon=True),
            *(
                threading.Thread(target=self._writer_loop, name=f"edge-writer-{i}", daemon=True)
                for i in range(self.writer_threads)
            ),
        ]
        self.trigger.start()
        for t in self._threads:
            t.start()

    def request_stop(self) -> None:
        """Stop capturing now; what is queued still drains (``stop`` waits for it)."""
        with self._lock:
            if self._stop_asked_mono is None:
                self._stop_asked_mono = time.monotonic()
        self._stop_capture.set()
        self.trigger.close()  # no more requests: capture flushes what the trigger holds

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop capturing, drain the queue, join. True when everything finished within timeout."""
        self.request_stop()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the source has ended and the queue is drained (a finite source)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.running

    # -- threads ---------------------------------------------------------------------------------

    def _capture_loop(self) -> None:
        """Camera frames -> checks -> trigger -> units into the queue. Frames are checked before
        the trigger sees them, so a broken frame never becomes (part of) a unit."""
        try:
            for frame in self.source.frames(self._stop_capture):
                with self._lock:
                    self.frames_read += 1
                problem = frame_problem(frame.image, self.expect_size_px)
                if problem is not None:
                    self._skip(frame, problem)
                    continue
                for unit in self.trigger.feed(frame):
                    self._enqueue(unit)
            # The source ended or the line stops: a unit the trigger began is kept, not lost.
            for unit in self.trigger.finish():
                self._enqueue(unit)
        except TriggerError as exc:
            log.error("camera %s: %s", self.camera, exc)
            with self._lock:
                self.source_error = f"trigger failed: {exc}"
        except Exception as exc:  # a dead camera must show up on /healthz, not kill the service
            log.exception("camera %s: frame source failed", self.camera)
            with self._lock:
                self.source_error = f"frame source failed: {exc}"
        finally:
            self._capture_done.set()

    def _enqueue(self, frame: Frame) -> None:
        try:
            self._queue.put_nowait(frame)
            return
        except queue.Full:
            pass
        try:
            self._queue.get_nowait()  # the oldest waiting frame makes room for the newest
            with self._lock:
                self.frames_dropped += 1
        except queue.Empty:
            pass  # the worker took one meanwhile
        # This thread is the only producer, so there is room now.
        self._queue.put_nowait(frame)

    def _skip(self, frame: Frame, reason: str) -> None:
        with self._lock:
            self.frames_invalid[reason] += 1
            n = self.frames_invalid[reason]
        if n == 1 or n % 100 == 0:  # a camera in the wrong mode must not flood the log
            shape = getattr(frame.image, "shape", None)
            log.warning("frame %d skipped (%s, %d so far), shape %s", frame.index, reason, n, shape)

    def _record_error(self, frame: Frame, exc: Exception) -> None:
        log.exception("unit %d failed", frame.index)
        with self._lock:
            self.errors += 1
            self.last_error = f"frame {frame.index}: {type(exc).__name__}: {exc}"
            self.last_error_mono = time.monotonic()

    def _inference_loop(self) -> None:
        try:
            while True:
                try:
                    frame = self._queue.get(timeout=0.05)
                except queue.Empty:
                    if self._capture_done.is_set() and self._queue.empty():
                        return
                    continue
                age_s = time.monotonic() - frame.captured_mono
                if self.max_frame_age_s is not None and age_s > self.max_frame_age_s:
                    self._skip(frame, "stale")
                    continue
                try:
                    decided = self.decide_frame(frame)
                except Exception as exc:  # one bad frame must not stop the line
                    self._record_error(frame, exc)
                    continue
                with self._lock:
                    self._unwritten += 1
                self._decided.put(decided)
        finally:
            for _ in range(self.writer_threads):
                self._decided.put(None)  # tells each writer that nothing more will come

    def _writer_loop(self) -> None:
        while (decided := self._decided.get()) is not None:
            try:
                self.write(decided, hold_on_disk_error=True)
            except UnitNotStored as exc:
                log.error("camera %s: unit %d (%s) NOT stored: %s", self.camera,
                          decided.frame.index, decided.decision.verdict, exc)
            except Exception as exc:
                self._record_error(decided.frame, exc)
            finally:
                with self._lock:
                    self._unwritten -= 1

    # -- one unit --------------------------------------------------------------------------------

    def process(self, frame: Frame) -> UnitRecord:
        """Frame -> inference -> decision -> images -> stored unit (files first, then the row)."""
        return self.write(self.decide_frame(frame))

    def decide_frame(self, frame: Frame) -> "_Decided":
        dequeued = time.monotonic()
        # One read of the attribute per unit: a model swapped meanwhile (PUT /api/v1/model) never
        # mixes one model's heatmap with the other's thresholds or name.
        inferencer = self.inferencer
        result = inferencer.infer(frame.image)
        decision = decide(result, inferencer.card, px_per_mm=self.px_per_mm, rules=self.rules)
        decision = self.grading.apply(frame.image, result.heatmap, decision, inferencer)
        with self._lock:
            self.inference_s.observe(float(result.infer_ms) / 1000.0)
        return _Decided(
            frame, result, decision, dequeued, time.monotonic(), datetime.now(timezone.utc),
            inferencer.name, inferencer.version,
        )

    def write(self, decided: "_Decided", *, hold_on_disk_error: bool = False) -> UnitRecord:
        """Store a decided unit. Only the heatmap's grey values are made here: the colour heatmap
        and the overlay are rendered when someone first asks for them (edge.storage.files), which keeps
        ~45 ms of CPU per unit off the cores inference runs on.

        With ``hold_on_disk_error`` (the writer thread) a disk that refuses the files does not
        lose the unit: it is retried until the disk takes it, or given up (UnitNotStored) once a
        stop's grace is over (:meth:`_add_holding`). A unit that raises is counted as not stored.
        """
        try:
            record = self._render_and_store(decided, hold_on_disk_error)
        except Exception:
            with self._lock:
                self.units_not_stored += 1
            raise
        if self.on_unit is not None:
            self.on_unit(decided.frame, record)
        return record

    def _render_and_store(self, decided: "_Decided", hold_on_disk_error: bool) -> UnitRecord:
        frame, result, decision = decided.frame, decided.result, decided.decision
        dequeued, decided_mono, decided_at = decided.dequeued_mono, decided.decided_mono, decided.decided_at
        rendering_started = time.monotonic()
        heatmap_grey = heatmap_to_grey(result.heatmap)
        rendered_mono = time.monotonic()
        timings = {
            "queue_ms": (dequeued - frame.captured_mono) * 1000.0,
            "infer_ms": float(result.infer_ms),
            "capture_to_verdict_ms": (decided_mono - frame.captured_mono) * 1000.0,
            "render_ms": (rendered_mono - rendering_started) * 1000.0,
        }
        unit = NewUnit(
            station=self.station_id,
            line=self.line,
            captured_at=frame.captured_at,
            decided_at=decided_at,
            verdict=decision.verdict,
            score=float(decision.score),
            defects=[d.model_dump(mode="json") for d in decision.defects],
            model_name=decided.model_name,
            model_version=decided.model_version,
            thresholds={"image": decision.image_threshold, "pixel": decision.pixel_threshold},
            timings=timings,
            camera=self.camera,
            unit_ref=frame.unit_ref,
        )
        if hold_on_disk_error:
            record = self._add_holding(unit, frame.image, heatmap_grey)
        else:
            record = self.store.add(unit, original_rgb=frame.image, heatmap=heatmap_grey)
        with self._lock:
            self.units_by_verdict[record.verdict] += 1
            self.last_timings = {**timings, "store_ms": (time.monotonic() - rendered_mono) * 1000}
        return record

    STORAGE_RETRY_INITIAL_S = 0.1
    STORAGE_RETRY_MAX_S = 5.0
    # After a stop is asked, how long refused units are still retried (space may come back, a
    # passing I/O error may clear) before each is given up so the station exits in seconds.
    STORAGE_STOP_GRACE_S = 5.0

    def _add_holding(self, unit: NewUnit, image: np.ndarray, heatmap_grey: np.ndarray) -> UnitRecord:
        """store.add, retried with capped backoff while the disk refuses the files (full, quota,
        I/O error). store.add leaves nothing behind when it fails, so a retry starts clean.

        Meanwhile the decided queue fills, inference waits on it and capture drops the oldest
        frames (counted): the verdicts already made are kept, newer frames are what is lost.
        While stopping, a unit still refused when the grace is over raises UnitNotStored.
        """
        delay_s = self.STORAGE_RETRY_INITIAL_S
        while True:
            try:
                record = self.store.add(unit, original_rgb=image, heatmap=heatmap_grey)
            except OSError as exc:
                if self.storage.failed(exc):
                    log.error("storage refused a unit, holding it and retrying: %s", exc)
                give_up_at = self._give_up_at()
                if give_up_at is not None and time.monotonic() >= give_up_at:
                    raise UnitNotStored(
                        f"the disk still refused it {self.STORAGE_STOP_GRACE_S:g} s after the "
                        f"stop was asked: {exc}"
                    ) from exc
                if give_up_at is None:
                    self._stop_capture.wait(delay_s)  # a stop wakes it for a try at once
                else:
                    time.sleep(max(0.0, min(delay_s, give_up_at - time.monotonic())))
                delay_s = min(delay_s * 2, self.STORAGE_RETRY_MAX_S)
                continue
            since = self.storage.recovered()
            if since is not None:
                log.warning("storage writes again (refused since %s); held units follow", since)
            return record

    def _give_up_at(self) -> float | None:
        """When the writer stops retrying refused units: the stop's grace end (None while running)."""
        with self._lock:
            asked = self._stop_asked_mono
        return None if asked is None else asked + self.STORAGE_STOP_GRACE_S

    def storage_problem(self) -> str | None:
        """The disk trouble in words for /healthz, with how many decided units wait, or None."""
        with self._lock:
            held = self._unwritten
        return self.storage.problem(held)

    # -- reporting -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        source = self.source_status.snapshot()
        trigger = self.trigger.snapshot()
        with self._lock:
            return {
                "camera": self.camera,
                "trigger": trigger,
                "source": source,
                "frames_invalid": dict(self.frames_invalid + Counter(source["skipped"])),
                "inference_seconds": self.inference_s.snapshot(),
                "running": self.running,
                "frames_read": self.frames_read,
                "frames_dropped": self.frames_dropped,
                "queued": self._queue.qsize(),
                "units_by_verdict": dict(self.units_by_verdict),
                "units_not_stored": self.units_not_stored,
                "errors": self.errors,
                "last_error": self.last_error,
                "last_error_age_s": (
                    None
                    if self.last_error_mono is None
                    else time.monotonic() - self.last_error_mono
                ),
                "source_error": self.source_error,
                "last_timings": dict(self.last_timings),
                "storage": {**self.storage.snapshot(), "held": self._unwritten},
            }
