"""Triggers on synthetic frame sequences: how camera frames become units."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timezone

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from edge.line.sources import Frame
from edge.line.triggers.base import FrameTrigger, IntervalTrigger, TriggerContext, TriggerError
from edge.line.triggers.build import build_trigger
from edge.line.triggers.config import (
    ExternalTriggerConfig,
    IntervalTriggerConfig,
    PresenceTriggerConfig,
    TriggerConfig,
)
from edge.line.triggers.external import ExternalTrigger, TriggerBusy
from edge.line.triggers.presence import PresenceTrigger
from tests.edge.pipeline_helpers import ListSource

CTX = TriggerContext(station="station-1", line="line-1", camera="cam-1")
H, W = 96, 128


def frame(i: int, image: np.ndarray, at_mono: float | None = None, **truth) -> Frame:
    return Frame(i, image, datetime.now(timezone.utc),
                 time.monotonic() if at_mono is None else at_mono, truth)


def run(trigger, frames) -> list[Frame]:
    units = [u for f in frames for u in trigger.feed(f)]
    return units + trigger.finish()


# -- a belt with textured objects sliding across ---------------------------------------------------

def textured(rng, shape, base) -> np.ndarray:
    """A garment-like texture: a colour with a coarse weave of +-35 grey levels."""
    oh, ow = shape
    weave = rng.integers(-35, 36, ((oh + 3) // 4, (ow + 3) // 4, 3))
    weave = np.kron(weave, np.ones((4, 4, 1), int))[:oh, :ow]
    return np.clip(np.asarray(base) + weave, 0, 255).astype(np.uint8)


def belt_sequence(n_objects=3, *, seed=0, obj=(64, 56), step=6, gap=8, drift=0.0, noise=3.0,
                  shape=(H, W)):
    """A plain grey belt with sensor noise; textured objects slide left to right, one at a time,
    each entering from outside and leaving completely, with empty belt between them. The truth
    names the object in view and its left edge. ``drift``: grey levels the light rises per frame."""
    rng = np.random.default_rng(seed)
    h, w = shape
    oh, ow = obj
    frames, light = [], 110.0
    colours = [(30, 40, 90), (200, 60, 50), (40, 200, 220), (230, 230, 230)]
    textures = [textured(rng, obj, colours[k % len(colours)]) for k in range(n_objects)]

    def belt():
        base = light + rng.normal(0, noise, (h, w, 1))
        return np.clip(np.repeat(base, 3, axis=2), 0, 255).astype(np.uint8)

    def add(image, **truth):
        nonlocal light
        frames.append(frame(len(frames), image, at_mono=len(frames) * 0.04, **truth))
        light += drift

    for _ in range(gap):
        add(belt(), object=None)
    top = (h - oh) // 2
    for k, texture in enumerate(textures):
        for x in range(-ow, w + step, step):
            image = belt()
            x0, x1 = max(0, x), min(w, x + ow)
            if x1 > x0:
                image[top : top + oh, x0:x1] = texture[:, x0 - x : x1 - x]
                add(image, object=k, x=x)
            else:
                add(image, object=None)
        for _ in range(gap):
            add(belt(), object=None)
    return frames, textures


def presence(**kw) -> PresenceTrigger:
    return PresenceTrigger(PresenceTriggerConfig(mode="presence", **kw), CTX)


def test_presence_makes_exactly_one_unit_per_object_with_the_best_covered_frame():
    frames, _ = belt_sequence(3)
    units = run(presence(), frames)
    assert [u.truth["object"] for u in units] == [0, 1, 2]
    for u in units:  # the best frame by coverage shows the whole object, not a part of it
        assert 0 <= u.truth["x"] <= W - 56
        assert u.truth["frames_present"] >= 10
    assert units[0].captured_mono > frames[0].captured_mono


def test_presence_follows_a_slow_light_change_and_ignores_flicker_and_the_outside_of_its_roi():
    frames, _ = belt_sequence(2, drift=0.4, seed=1)  # the light rises ~50 grey levels over the run
    assert [u.truth["object"] for u in run(presence(background_rate=0.1), frames)] == [0, 1]
    # Without learning the background, the risen light reads as a unit that never leaves (kept
    # when the source ends), and the second object is lost inside it.
    frozen = run(presence(background_rate=0.0), frames)
    assert [u.truth["object"] for u in frozen] == [0, None]

    # One-frame flashes over half the belt: never min_frames in a row, never a unit.
    belt = np.full((H, W, 3), 110, np.uint8)
    flash = belt.copy()
    flash[:, : W // 2] = 250
    flicker = [frame(i, flash if i % 2 else belt, i * 0.04) for i in range(40)]
    assert run(presence(min_frames=2), flicker) == []

    # A watched region away from the objects' path sees nothing pass.
    frames, _ = belt_sequence(2, seed=2)
    assert run(presence(roi=(0, 0, W, 20)), frames) == []
    assert len(run(presence(roi=(0, 20, W, 56)), frames)) == 2


def test_presence_best_by_sharpness_picks_the_sharpest_frame():
    belt = np.full((H, W, 3), 110, np.uint8)
    rng = np.random.default_rng(3)
    sharp = belt.copy()
    sharp[20:76, 20:108] = textured(rng, (56, 88), (30, 40, 90))
    import cv2

    blurred = cv2.GaussianBlur(sharp, (15, 15), 5)
    seq = [belt] * 3 + [blurred, blurred, sharp, blurred] + [belt] * 3
    frames = [frame(i, img, i * 0.04, tag=i) for i, img in enumerate(seq)]
    (unit,) = run(presence(best_by="sharpness"), frames)
    assert unit.truth["tag"] == 5


def test_presence_stitches_the_strips_of_a_unit_under_a_line_camera():
    """A line camera: each frame is an 8-row strip of whatever passes under it."""
    rng = np.random.default_rng(4)
    strip_h, width = 8, 128
    garments = [rng.integers(0, 256, (80, width, 3), dtype=np.uint8),
                rng.integers(0, 256, (48, width, 3), dtype=np.uint8)]
    belt = np.full((strip_h, width, 3), 100, np.uint8)
    strips = [belt] * 4
    for g in garments:
        strips += [g[r : r + strip_h] for r in range(0, len(g), strip_h)] + [belt] * 4
    frames = [frame(i, s, i * 0.01) for i, s in enumerate(strips)]
    units = run(presence(pick="stitch", min_frames=1, max_frames=64), frames)
    assert [u.image.shape for u in units] == [(80, width, 3), (48, width, 3)]
    assert all(np.array_equal(u.image, g) for u, g in zip(units, garments))

    capped = presence(pick="stitch", min_frames=1, max_frames=4)
    units = run(capped, frames)
    assert [u.image.shape[0] for u in units] == [32, 32]
    assert capped.snapshot()["frames_not_stitched"] == (10 - 4) + (6 - 4)


def test_a_unit_still_present_when_the_source_ends_is_kept():
    frames, _ = belt_sequence(1)
    cut = frames[: len(frames) // 2]  # ends with the object in view
    units = run(presence(), cut)
    assert len(units) == 1 and units[0].truth["object"] == 0


def test_a_unit_that_never_leaves_closes_and_the_background_is_relearned():
    belt = np.full((H, W, 3), 110, np.uint8)
    covered = np.full((H, W, 3), 220, np.uint8)  # e.g. the belt stopped with a panel under it
    frames = [frame(i, belt if i < 3 else covered, i * 0.04) for i in range(30)]
    trigger = presence(max_present_frames=10)
    units = run(trigger, frames)
    assert len(units) == 1 and trigger.snapshot()["background_relearned"] == 1
    assert not trigger.present


def test_a_roi_outside_the_frame_is_an_error_naming_it():
    with pytest.raises(TriggerError, match=r"roi \[100, 0, 64, 10\] does not fit the 128x96 frame"):
        presence(roi=(100, 0, 64, 10)).feed(frame(0, np.zeros((H, W, 3), np.uint8)))


# -- frame and interval ------------------------------------------------------------------------

def test_frame_mode_makes_every_frame_a_unit():
    frames = [frame(i, np.zeros((4, 4, 3), np.uint8), i * 0.1) for i in range(5)]
    trigger = FrameTrigger()
    assert run(trigger, frames) == frames and trigger.snapshot() == {"mode": "frame", "units": 5}


def test_interval_takes_one_frame_per_period_and_makes_up_no_burst_after_an_outage():
    image = np.zeros((4, 4, 3), np.uint8)
    times = [i * 0.1 for i in range(21)] + [10.0 + i * 0.1 for i in range(6)]  # 0..2 s, then 10 s
    frames = [frame(i, image, t) for i, t in enumerate(times)]
    units = run(IntervalTrigger(IntervalTriggerConfig(mode="interval", every_s=0.5)), frames)
    got = [round(u.captured_mono, 2) for u in units]
    assert got[:5] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert got[5:] == [10.0, 10.5]  # one unit on return, then the period again: no burst


# -- external ------------------------------------------------------------------------------------

def external(**kw) -> ExternalTrigger:
    return ExternalTrigger(ExternalTriggerConfig(mode="external", **kw), CTX)


def test_external_answers_each_request_with_the_next_frame_carrying_its_unit_ref():
    trigger = external()
    image = np.zeros((4, 4, 3), np.uint8)
    assert trigger.feed(frame(0, image)) == []  # frames flow; no request, no unit
    before = frame(1, image)  # captured before the request: it may show the previous garment
    trigger.request("BC-1")
    trigger.request(None, via="mqtt")
    assert trigger.feed(before) == []
    first = trigger.feed(frame(2, image))
    second = trigger.feed(frame(3, image))
    assert [(u.index, u.unit_ref) for u in first + second] == [(2, "BC-1"), (3, None)]
    assert trigger.feed(frame(4, image)) == []
    snap = trigger.snapshot()
    assert (snap["requests"], snap["units"], snap["pending"], snap["expired"]) == (2, 2, 0, 0)


def test_external_drops_requests_no_frame_answered_in_time_and_refuses_too_many():
    trigger = external(max_wait_s=0.2, max_pending=2)
    trigger.request("late")
    trigger.request("later")
    with pytest.raises(TriggerBusy, match="2 trigger requests already wait"):
        trigger.request("too many")
    time.sleep(0.3)
    assert trigger.feed(frame(0, np.zeros((4, 4, 3), np.uint8))) == []
    snap = trigger.snapshot()
    assert (snap["expired"], snap["refused"], snap["pending"]) == (2, 1, 0)
    # While no frame comes (the camera is down), expired requests make room for new ones.
    trigger.request("a")
    trigger.request("b")
    time.sleep(0.3)
    assert trigger.request("c") == 1 and trigger.snapshot()["expired"] == 4


# -- config --------------------------------------------------------------------------------------

def test_trigger_configs_are_strict_and_chosen_by_mode():
    adapter = TypeAdapter(TriggerConfig)
    assert isinstance(build_trigger(None, CTX), FrameTrigger)
    assert isinstance(build_trigger(adapter.validate_python({"mode": "presence"}), CTX),
                      PresenceTrigger)
    assert build_trigger(adapter.validate_python({"mode": "interval", "every_s": 2}), CTX).every_s == 2
    for bad, words in [
        ({"mode": "interval"}, "every_s"),
        ({"mode": "interval", "every_s": 0}, "greater than 0"),
        ({"mode": "presence", "on_fraction": 0.1, "off_fraction": 0.2}, "must be below on_fraction"),
        ({"mode": "presence", "roi": [0, 0, 0, 5]}, "greater than or equal to 1"),
        ({"mode": "presence", "pick": "average"}, "'best' or 'stitch'"),
        ({"mode": "external", "mqtt": {"port": 1883}}, "host"),
        ({"mode": "frame", "every_s": 1}, "Extra inputs are not permitted"),
        ({"mode": "sometimes"}, "does not match any of the expected tags"),
    ]:
        with pytest.raises(ValidationError, match=words):
            adapter.validate_python(bad)


# -- in the pipeline -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inferencer(tiny_model_dir):
    from qc.inference import Inferencer

    return Inferencer(tiny_model_dir, threads=1)


def test_a_presence_line_stores_one_unit_per_object_and_skips_bad_frames_first(store, inferencer):
    from tests.edge.pipeline_helpers import make_pipeline

    frames, _ = belt_sequence(3, seed=5)
    broken = [Frame(900, np.zeros((10, 10, 3), np.uint8), frames[0].captured_at, 0.0),
              Frame(901, None, frames[0].captured_at, 0.0)]
    seen = []
    pipe = make_pipeline(ListSource(restamp=True, frames=frames[:20] + broken + frames[20:]), inferencer, store,
                         "station.id=s", "station.line=l", f"source.expect_size_px=[{H}, {W}]",
                         camera="belt", trigger=presence(),
                         on_unit=lambda f, rec: seen.append((f.truth["object"], rec)))
    pipe.start()
    assert pipe.wait(timeout_s=30)
    snap = pipe.snapshot()
    assert sorted(o for o, _ in seen) == [0, 1, 2] and store.count() == 3
    assert {r.camera for _, r in seen} == {"belt"}
    assert snap["frames_read"] == len(frames) + 2 and snap["errors"] == 0
    assert snap["frames_invalid"] == {"wrong_size": 1, "empty": 1}
    assert snap["trigger"]["mode"] == "presence" and snap["trigger"]["units"] == 3


def test_a_roi_that_does_not_fit_stops_capture_and_says_why(store, inferencer):
    from tests.edge.pipeline_helpers import make_pipeline

    frames, _ = belt_sequence(1)
    pipe = make_pipeline(ListSource(restamp=True, frames=frames), inferencer, store, "station.id=s", "station.line=l",
                         trigger=presence(roi=(0, 0, W + 1, H)))
    pipe.start()
    assert pipe.wait(timeout_s=30)
    assert "trigger failed: presence roi" in pipe.snapshot()["source_error"]


# -- external, through REST and MQTT -------------------------------------------------------------

def external_line(store, inferencer, trigger_config: dict, camera="cam-1"):
    """A running simulated camera whose units come only on request."""
    from tests.edge.pipeline_helpers import make_pipeline
    from edge.line.sources import SimulatedSource
    from edge.line.sources.config import SimulatedSourceConfig

    src = SimulatedSource(SimulatedSourceConfig(fps=25, size_px=(H, W)))
    context = TriggerContext(station="station-1", line="line-1", camera=camera)
    trigger = build_trigger(TypeAdapter(TriggerConfig).validate_python(trigger_config), context)
    return make_pipeline(src, inferencer, store, "station.id=station-1", "station.line=line-1",
                         camera=camera, trigger=trigger)


def wait_until(predicate, timeout_s=10.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def units_with(store, unit_ref):
    from edge.storage.query import UnitFilter

    return store.list_units(limit=50, filter=UnitFilter(unit_ref=unit_ref))[0]


def test_post_trigger_makes_the_next_frame_a_unit_with_its_unit_ref(store, inferencer, make_client,
                                                                   auth):
    pipe = external_line(store, inferencer, {"mode": "external"})
    other = external_line(store, inferencer, {"mode": "frame"}, camera="cam-2")
    client = make_client(pipelines=[pipe, other])
    op = auth["operator"]
    pipe.start()
    try:
        time.sleep(0.2)  # frames flow, and none becomes a unit by itself
        assert store.count() == 0
        res = client.post("/api/v1/trigger", json={"barcode": "BC-0001", "station": "station-1"},
                          headers=op)
        assert res.status_code == 202, res.text
        assert res.json() == {"station": "station-1", "unit_ref": "BC-0001", "cameras": ["cam-1"],
                              "pending": {"cam-1": 1}}
        (unit,) = wait_until(lambda: units_with(store, "BC-0001"), what="the triggered unit")
        assert unit.camera == "cam-1" and unit.unit_ref == "BC-0001"
        shown = client.get("/api/v1/units", params={"unit_ref": "BC-0001"}).json()["items"]
        assert [u["id"] for u in shown] == [unit.id]
        res = client.post("/api/v1/trigger", json={"camera": "cam-1"}, headers=op)
        assert res.status_code == 202 and res.json()["unit_ref"] is None
        wait_until(lambda: store.count() == 2, what="a unit without unit_ref")
        assert client.get("/healthz").json()["cameras"][0]["trigger"]["requests"] == 2

        for body, headers, code, words in [
            ({"unit_ref": "x"}, auth["viewer"], 403, "operator"),
            ({"unit_ref": "x"}, {}, 401, ""),
            ({"station": "station-9"}, op, 404, "this is station station-1, not station-9"),
            ({"camera": "cam-9"}, op, 404, "no camera 'cam-9' on this station (cameras: cam-1, cam-2)"),
            ({"camera": "cam-2"}, op, 409, "camera cam-2 makes units by frame, not on request"),
            ({"unit_ref": "a", "barcode": "b"}, op, 422, "differ"),
            ({"unit_ref": ""}, op, 422, "at least 1 character"),
            ({"serial": "x"}, op, 422, "Extra inputs"),
        ]:
            res = client.post("/api/v1/trigger", json=body, headers=headers)
            assert res.status_code == code and words in res.text, (body, res.text)
    finally:
        pipe.stop()
    res = client.post("/api/v1/trigger", json={"unit_ref": "late"}, headers=op)
    assert res.status_code == 503 and "camera cam-1 is not running" in res.json()["detail"]
    assert store.count() == 2


def test_a_station_without_external_cameras_refuses_triggers(make_client, auth):
    res = make_client().post("/api/v1/trigger", json={}, headers=auth["operator"])
    assert res.status_code == 409 and "no camera of this station has trigger mode 'external'" in res.text


def test_an_mqtt_trigger_message_with_a_control_character_is_refused():
    """The MQTT door refuses what the REST door does: a NUL unit_ref cannot reach the database."""
    from edge.line.triggers.mqtt import BadTriggerMessage, parse_trigger_payload

    assert parse_trigger_payload(b'{"unit_ref": "M-1", "camera": "cam-1"}') == ("M-1", "cam-1")
    for payload, words in (
        (rb'{"unit_ref": "BAD\u0000REF"}', "unit_ref contains a control character (U+0000) at position 3"),
        (rb'{"barcode": "\ud800"}', "barcode contains an unpaired surrogate (U+D800)"),
        (rb'{"camera": "cam\n1"}', "camera contains a control character (U+000A)"),
    ):
        with pytest.raises(BadTriggerMessage, match=re.escape(words)):
            parse_trigger_payload(payload)


def test_mqtt_messages_trigger_units_and_the_subscription_survives_a_broker_restart(
        store, inferencer, make_client, tmp_path):
    import paho.mqtt.publish as publish

    from tests.edge.mqtt_broker import MqttBroker

    folder = tmp_path / "mosquitto"
    folder.mkdir()
    broker = MqttBroker(folder)
    broker.start()
    mqtt = {"host": "127.0.0.1", "port": broker.port, "reconnect_max_s": 1}
    pipe = external_line(store, inferencer, {"mode": "external", "mqtt": mqtt})
    client = make_client(pipeline=pipe)
    topic = "qc/line-1/station-1/trigger"

    def send(payload: str) -> None:
        publish.single(topic, payload, qos=1, hostname="127.0.0.1", port=broker.port)

    def listener():
        return client.get("/healthz").json()["cameras"][0]["trigger"]["mqtt"]

    pipe.start()
    try:
        wait_until(lambda: listener()["connected"], what="the trigger subscription")
        assert listener()["topic"] == topic
        send('{"unit_ref": "M-1"}')
        (unit,) = wait_until(lambda: units_with(store, "M-1"), what="the MQTT-triggered unit")
        assert unit.camera == "cam-1"
        send("not json")
        send('{"unit_ref": 7}')
        send('{"unit_ref": "M-2", "camera": "cam-2"}')  # another camera's: not this one's unit
        wait_until(lambda: listener()["rejected"] == 2, what="bad messages counted")
        assert store.count() == 1 and listener()["messages"] == 1

        broker.stop()
        problem = wait_until(
            lambda: [p for p in client.get("/healthz").json()["problems"] if "MQTT trigger" in p],
            what="/healthz to name the trigger broker")
        assert problem[0].startswith(f"camera cam-1: MQTT trigger broker 127.0.0.1:{broker.port}: ")
        broker.start()
        wait_until(lambda: listener()["connected"], timeout_s=15, what="the subscription back")
        send('{"barcode": "M-3"}')
        wait_until(lambda: units_with(store, "M-3"), what="a unit after the broker came back")
    finally:
        pipe.stop()
        broker.stop()
    assert store.count() == 2


def test_the_mqtt_trigger_logs_in_over_tls_like_the_mqtt_output(store, inferencer, make_client, tmp_path):
    """One broker config for the station's MQTT: the trigger listener takes a user, a password and
    TLS as the output does, so a broker that refuses anonymous clients triggers units too."""
    import paho.mqtt.publish as publish

    from tests.edge.mqtt_broker import MqttBroker

    folder = tmp_path / "mosquitto"
    folder.mkdir()
    broker = MqttBroker(folder, users={"line": "s3cret"}, tls=True)
    broker.start()
    mqtt = {"host": "127.0.0.1", "port": broker.port, "reconnect_max_s": 1, "username": "line",
            "password": "s3cret", "tls": {"ca_file": str(broker.ca_file)}}
    pipe = external_line(store, inferencer, {"mode": "external", "mqtt": mqtt})
    client = make_client(pipeline=pipe)
    pipe.start()
    try:
        listener = lambda: client.get("/healthz").json()["cameras"][0]["trigger"]["mqtt"]  # noqa: E731
        wait_until(lambda: listener()["connected"], what="the trigger subscription over TLS")
        publish.single("qc/line-1/station-1/trigger", '{"unit_ref": "T-1"}', qos=1,
                       hostname="127.0.0.1", port=broker.port,
                       auth={"username": "line", "password": "s3cret"},
                       tls={"ca_certs": str(broker.ca_file)})
        wait_until(lambda: units_with(store, "T-1"), what="the unit the message triggered")
    finally:
        pipe.stop()
        broker.stop()
