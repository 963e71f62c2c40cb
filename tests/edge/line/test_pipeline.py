import threading
import time

import numpy as np
import pytest

from edge.line.sources import Frame, SimulatedSource
from edge.line.sources.config import SimulatedSourceConfig
from edge.reports.pictures import unit_picture
from qc.inference import Inferencer
from tests.edge.pipeline_helpers import ListSource, make_pipeline

SMALL = (96, 128)


@pytest.fixture(scope="module")
def inferencer(tiny_model_dir):
    return Inferencer(tiny_model_dir, threads=1)


def source(fps=200.0, max_frames=5, **kw) -> SimulatedSource:
    return SimulatedSource(SimulatedSourceConfig(fps=fps, size_px=SMALL, max_frames=max_frames, **kw))


class SlowInferencer:
    """The real model behind a deliberately slow call, to make the worker fall behind."""

    def __init__(self, inner, delay_s):
        self.inner, self.delay_s = inner, delay_s
        self.card, self.name, self.version = inner.card, inner.name, inner.version

    def infer(self, image):
        time.sleep(self.delay_s)
        return self.inner.infer(image)


def test_simulated_source_is_seeded_paced_and_knows_the_truth():
    def take(seed):
        return list(source(fps=20, max_frames=4, seed=seed, defect_probability=0.5)
                    .frames(threading.Event()))

    started = time.monotonic()
    a = take(7)
    assert time.monotonic() - started >= 3 / 20 - 0.01  # 4 frames at 20 fps span 3 periods
    b, c = take(7), take(8)
    assert [f.index for f in a] == [0, 1, 2, 3]
    assert all(f.image.shape == (*SMALL, 3) and f.image.dtype == np.uint8 for f in a)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, c))
    assert all(set(f.truth) == {"defective", "defect_type", "fabric"} for f in a)
    every = list(source(max_frames=20, defect_probability=1.0).frames(threading.Event()))
    assert sum(f.truth["defective"] for f in every) >= 15


def test_source_stops_on_event():
    stop = threading.Event()
    frames = source(fps=2, max_frames=None).frames(stop)
    next(frames)
    stop.set()
    started = time.monotonic()
    assert list(frames) == []
    assert time.monotonic() - started < 0.3  # woke from its pacing wait, did not sleep 0.5 s


def test_process_decides_from_the_heatmap(store, inferencer):
    pipe = make_pipeline(source(), inferencer, store, "station.id=s", "station.line=l")
    bright = np.full((*SMALL, 3), 200, np.uint8)
    dark_spot = bright.copy()
    dark_spot[30:50, 60:90] = 0  # the tiny model lights up dark pixels
    ok = pipe.process(Frame(0, bright, *_now()))
    bad = pipe.process(Frame(1, dark_spot, *_now()))
    assert ok.verdict == "pass" and ok.defects == []
    assert bad.verdict == "fail" and bad.score == pytest.approx(1.0)
    assert len(bad.defects) == 1
    x, y, w, h = bad.defects[0]["box"]
    assert abs(x - 60) <= 2 and abs(y - 30) <= 2 and abs(w - 30) <= 4 and abs(h - 20) <= 4
    assert (bad.model_name, bad.model_version) == (inferencer.name, inferencer.version)
    assert bad.thresholds == {"image": 0.5, "pixel": 0.5}
    assert set(bad.timings) == {"queue_ms", "infer_ms", "capture_to_verdict_ms", "render_ms"}
    assert pipe.units_by_verdict == {"pass": 1, "fail": 1}
    for kind in ("image", "heatmap", "overlay"):
        assert unit_picture(store, bad.id, kind).is_file()


def _now():
    from datetime import datetime, timezone
    return datetime.now(timezone.utc), time.monotonic()


def test_runs_simulated_units_into_the_store(store, inferencer):
    seen = []
    pipe = make_pipeline(source(max_frames=6), inferencer, store, "station.id=st-9", "station.line=l-2",
                         on_unit=lambda frame, rec: seen.append((frame.truth, rec.id)))
    pipe.start()
    assert pipe.wait(timeout_s=30), "a finite source must end and the queue drain"
    snap = pipe.snapshot()
    assert snap["frames_read"] == 6 and snap["frames_dropped"] == 0 and snap["errors"] == 0
    assert sum(snap["units_by_verdict"].values()) == 6 == store.count() == len(seen)
    items, _ = store.list_units(limit=10)
    assert {r.station for r in items} == {"st-9"}
    assert all(r.timings["capture_to_verdict_ms"] >= r.timings["infer_ms"] > 0 for r in items)
    # Captured order is kept: newest first in the store is the last frame read.
    assert items[0].id == seen[-1][1]


def test_slow_consumer_drops_oldest_and_counts(store, inferencer):
    inspected = []
    pipe = make_pipeline(source(fps=200, max_frames=30), SlowInferencer(inferencer, 0.05), store,
                         "station.id=s", "station.line=l", "pipeline.queue_size=2",
                         on_unit=lambda frame, rec: inspected.append(frame.index))
    pipe.start()
    assert pipe.wait(timeout_s=30)
    snap = pipe.snapshot()
    assert snap["frames_read"] == 30
    assert snap["frames_dropped"] > 0
    # Every frame read is either a stored unit or a counted drop: nothing vanishes.
    assert store.count() + snap["frames_dropped"] == 30
    # Drop-oldest: frames are inspected in capture order and the last one captured is kept.
    assert inspected == sorted(inspected) and inspected[-1] == 29


def test_stop_drains_the_queue(store, inferencer):
    pipe = make_pipeline(source(fps=100, max_frames=None), SlowInferencer(inferencer, 0.03), store,
                         "station.id=s", "station.line=l", "pipeline.queue_size=4")
    pipe.start()
    time.sleep(0.3)
    assert pipe.stop(timeout_s=10)
    snap = pipe.snapshot()
    assert not snap["running"] and snap["queued"] == 0
    assert store.count() + snap["frames_dropped"] == snap["frames_read"] > 0


def test_a_failing_unit_is_counted_and_the_line_goes_on(store, inferencer):
    class Flaky(SlowInferencer):
        calls = 0

        def infer(self, image):
            Flaky.calls += 1
            if Flaky.calls == 2:
                raise RuntimeError("sensor glitch")
            return self.inner.infer(image)

    pipe = make_pipeline(source(max_frames=4), Flaky(inferencer, 0), store, "station.id=s",
                         "station.line=l")
    pipe.start()
    assert pipe.wait(timeout_s=30)
    snap = pipe.snapshot()
    assert snap["errors"] == 1 and "sensor glitch" in snap["last_error"]
    assert store.count() == 3


def test_invalid_frames_are_skipped_and_counted_by_reason(store, inferencer):
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    good = np.full((*SMALL, 3), 200, np.uint8)
    frames = [
        Frame(0, good, now, time.monotonic()),
        Frame(1, np.zeros((64, 64, 3), np.uint8), now, time.monotonic()),  # wrong size
        Frame(2, np.zeros((0, 0, 3), np.uint8), now, time.monotonic()),  # empty
        Frame(3, None, now, time.monotonic()),  # empty
        Frame(4, good.astype(np.float32), now, time.monotonic()),  # malformed
        Frame(5, good[:, :, 0], now, time.monotonic()),  # malformed: one channel
        Frame(6, good, now, time.monotonic() - 60),  # stale: captured a minute ago
        Frame(7, good, now, time.monotonic()),
    ]
    stored = []
    pipe = make_pipeline(ListSource(frames), inferencer, store, "station.id=s", "station.line=l",
                         f"source.expect_size_px={list(SMALL)}", "source.max_frame_age_s=5.0",
                         on_unit=lambda frame, rec: stored.append(frame.index))
    pipe.start()
    assert pipe.wait(timeout_s=30)
    snap = pipe.snapshot()
    assert sorted(stored) == [0, 7] and store.count() == 2  # writers may finish out of order
    assert snap["frames_read"] == 8 and snap["errors"] == 0
    assert snap["frames_invalid"] == {"wrong_size": 1, "empty": 2, "malformed": 2, "stale": 1}
    # Without expectations, any size is inspected and nothing is stale.
    pipe = make_pipeline(ListSource([frames[1], frames[6]]), inferencer, store, "station.id=s",
                         "station.line=l")
    pipe.start()
    assert pipe.wait(timeout_s=30)
    assert pipe.snapshot()["frames_invalid"] == {} and store.count() == 4


def test_a_folder_that_goes_away_and_comes_back_keeps_the_line_running(store, inferencer, tmp_path):
    import cv2

    from edge.line.sources import FolderSource
    from edge.line.sources.config import FolderSourceConfig

    folder = tmp_path / "line"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"{i:02d}.png"), rng.integers(0, 256, (*SMALL, 3), dtype=np.uint8))
    (folder / "03b.png").write_bytes(b"not a png")  # corrupt: skipped and counted, not fatal
    src = FolderSource(FolderSourceConfig(type="folder", path=folder, fps=40, loop=True,
                                          reconnect_initial_s=0.02, reconnect_max_s=0.05))
    pipe = make_pipeline(src, inferencer, store, "station.id=s", "station.line=l")
    pipe.start()
    try:
        _wait(lambda: store.count() >= 4)
        folder.rename(tmp_path / "unmounted")
        _wait(lambda: pipe.snapshot()["source"]["reconnects"] >= 2)
        down = pipe.snapshot()
        assert not down["source"]["up"] and down["running"]
        units_while_down = store.count()
        (tmp_path / "unmounted").rename(folder)
        _wait(lambda: store.count() >= units_while_down + 4)
    finally:
        assert pipe.stop(timeout_s=10)
    snap = pipe.snapshot()
    assert snap["source"]["reconnects"] >= 2 and snap["errors"] == 0
    assert snap["frames_invalid"]["unreadable"] >= 1
    assert store.count() + snap["frames_dropped"] == snap["frames_read"]


def _wait(condition, timeout_s=15.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


class ShapeClassifier:
    """A real, if simple, type classifier: long thin regions are slubs, compact ones holes, and
    anything between is too unsure to name (it stays "defect" with its confidence)."""

    def __init__(self):
        self.calls = []

    def classify(self, image_rgb, heatmap, defects, pixel_threshold):
        self.calls.append((image_rgb.shape, heatmap.shape, len(defects), pixel_threshold))
        out = []
        for d in defects:
            _, _, w, h = d.box
            elongation = max(w, h) / max(min(w, h), 1)
            if elongation >= 4:
                named, confidence = "slub", 0.9
            elif elongation <= 2:
                named, confidence = "hole", 0.8
            else:
                named, confidence = d.type, 0.4
            out.append(d.model_copy(update={"type": named, "type_confidence": confidence}))
        return out


def _panel_with(*boxes):
    image = np.full((*SMALL, 3), 200, np.uint8)
    for x, y, w, h in boxes:
        image[y : y + h, x : x + w] = 0  # the tiny model lights up dark pixels
    return image


SPOT, LINE = (60, 30, 30, 20), (10, 75, 60, 6)


def test_a_failed_units_defects_are_typed_then_graded_by_the_stations_table(store, inferencer):
    from edge.line.defect_grading import DefectGrading
    from edge.units import unit_severity
    from qc.severity import SeverityTable

    table = SeverityTable.model_validate(
        {"default": {"base": "major"},
         "types": {"hole": {"base": "major"}, "slub": {"base": "minor", "major_from_mm": 5}}}
    )
    classifier = ShapeClassifier()
    grading = DefectGrading(table, classifier)

    def run(px_per_mm, image):
        pipe = make_pipeline(source(), inferencer, store, "station.id=s", "station.line=l",
                             f"station.px_per_mm={'null' if px_per_mm is None else px_per_mm}",
                             grading=grading)
        return pipe.process(Frame(0, image, *_now()))

    ok = run(None, _panel_with())
    assert ok.verdict == "pass" and classifier.calls == []  # nothing to classify on a pass

    both = run(20.0, _panel_with(SPOT, LINE))  # the 60 px line is 3 mm long: a minor slub
    assert classifier.calls[-1] == ((*SMALL, 3), SMALL, 2, 0.5)
    kinds = {d["type"]: (d["severity"], d["type_confidence"]) for d in both.defects}
    assert kinds == {"hole": ("major", 0.8), "slub": ("minor", 0.9)}
    assert unit_severity(both.final_verdict, both.defects, None) == "major"

    long_slub = run(4.0, _panel_with(LINE))  # 15 mm: major
    assert [(d["type"], d["severity"]) for d in long_slub.defects] == [("slub", "major")]
    unmeasured = run(None, _panel_with(LINE))  # no camera scale: the type's base class
    assert [(d["type"], d["severity"]) for d in unmeasured.defects] == [("slub", "minor")]
    assert unit_severity(unmeasured.final_verdict, unmeasured.defects, None) == "minor"

    unsure = run(None, _panel_with((40, 30, 30, 10)))  # 3:1, neither shape
    assert [(d["type"], d["type_confidence"], d["severity"]) for d in unsure.defects] == [
        ("defect", 0.4, "major")]
    stored = store.get(long_slub.id)
    assert stored.defects[0]["type_confidence"] == 0.9 and stored.defects[0]["severity"] == "major"


def test_without_a_classifier_regions_stay_defect_and_take_the_default_class(store, inferencer):
    pipe = make_pipeline(source(), inferencer, store, "station.id=s", "station.line=l")
    bad = pipe.process(Frame(0, _panel_with(SPOT), *_now()))
    assert [(d["type"], d["type_confidence"], d["severity"]) for d in bad.defects] == [
        ("defect", None, "major")]
