"""Several cameras on one station, and the context every unit records (camera, unit_ref, lot)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from pydantic import ValidationError

from edge.config import EdgeConfig, load_config
from edge.storage.query import UnitFilter
from qc.overrides import ConfigError
from tests.edge.conftest import T0

LOT = {"po": "PO-4711", "style": "polo", "colour": "navy", "size": "M", "lot_size": 500}


def test_units_record_the_whole_lot_context_and_filter_by_camera_and_unit_ref(api, auth, add_unit):
    before = add_unit(T0, camera="top")
    lot = api.post("/api/v1/lots", json=LOT, headers=auth["operator"]).json()
    inside = add_unit(T0 + timedelta(seconds=1), camera="bottom", unit_ref="SKU-1|0001")
    assert (inside.lot, inside.po, inside.style, inside.colour, inside.size) == (
        str(lot["id"]), "PO-4711", "polo", "navy", "M")
    assert (before.po, before.colour, before.size) == (None, None, None)

    shown = api.get(f"/api/v1/units/{inside.id}").json()
    assert {k: shown[k] for k in ("lot", "po", "style", "colour", "size", "camera", "unit_ref")} == {
        "lot": str(lot["id"]), "po": "PO-4711", "style": "polo", "colour": "navy", "size": "M",
        "camera": "bottom", "unit_ref": "SKU-1|0001"}
    listed = api.get("/api/v1/units", params={"unit_ref": "SKU-1|0001"}).json()["items"]
    assert [u["id"] for u in listed] == [inside.id]
    assert [u["id"] for u in api.get("/api/v1/units", params={"camera": "top"}).json()["items"]] == [
        before.id]
    assert api.get("/api/v1/units", params={"unit_ref": ""}).status_code == 422
    csv_text = api.get("/api/v1/units.csv", params={"camera": "bottom"}).text
    assert "SKU-1|0001" in csv_text and "PO-4711" in csv_text and "navy" in csv_text


# -- configuration -------------------------------------------------------------------------------

def test_an_old_config_is_one_camera_named_cam_1(tmp_path):
    config = load_config("configs/edge/default.yaml", [f"storage.data_dir={tmp_path}"])
    (camera,) = config.camera_list()
    assert camera.id == "cam-1" and camera.source == config.source
    assert camera.trigger.mode == "frame"


def test_cameras_are_checked_when_the_config_loads(tmp_path):
    two = {"cameras": [{"id": "top", "source": {"type": "simulated"}},
                       {"id": "bottom", "source": {"type": "folder", "path": "shots"},
                        "trigger": {"mode": "interval", "every_s": 2}}]}
    config = EdgeConfig.model_validate(two)
    assert [(c.id, c.trigger.mode) for c in config.camera_list()] == [("top", "frame"), ("bottom", "interval")]
    yaml_file = tmp_path / "two.yaml"
    yaml_file.write_text("cameras:\n  - id: top\n    source: {type: folder, path: shots}\n")
    loaded = load_config(yaml_file)
    assert loaded.camera_list()[0].source.path.is_absolute()  # relative paths resolved per camera
    for bad, words in [
        ({**two, "source": {"type": "simulated"}}, "give either cameras or source, not both"),
        ({**two, "trigger": {"mode": "frame"}}, "give either cameras or trigger, not both"),
        ({"cameras": [two["cameras"][0], two["cameras"][0]]}, "camera ids must be unique; repeated: top"),
        ({"cameras": []}, "at least 1 item"),
        ({"cameras": [{"id": "a b", "source": {"type": "simulated"}}]}, "should match pattern"),
        ({"cameras": [{"id": "a"}]}, "source"),
        ({"cameras": [{"id": "a", "source": {"type": "simulated"}, "trigger": {"mode": "presence",
                                                                          "roi": [1, 2, 3]}}]}, "roi"),
    ]:
        with pytest.raises(ValidationError, match=words):
            EdgeConfig.model_validate(bad)
    with pytest.raises(ConfigError, match="cameras"):
        load_config(None, ["cameras=[]"])


# -- one service, two cameras --------------------------------------------------------------------

def _wait(condition, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_two_simulated_cameras_in_one_service_store_units_under_their_ids(tmp_path, tiny_model_dir):
    from fastapi.testclient import TestClient

    from edge.api.app import create_app
    from edge.main import stop_all
    from edge.services import build_services

    simulated = {"type": "simulated", "fps": 20, "size_px": [96, 128], "expect_size_px": [96, 128]}
    config = EdgeConfig.model_validate({
        "model": {"dir": str(tiny_model_dir)},
        "storage": {"data_dir": str(tmp_path / "var")},
        "pipeline": {"inference_threads": 1},
        "cameras": [
            {"id": "top", "source": {**simulated, "seed": 1}},
            {"id": "bottom", "source": {**simulated, "seed": 2}, "trigger": {"mode": "interval",
                                                                          "every_s": 0.2}},
        ],
    })
    services = build_services(config)
    assert [p.camera for p in services.pipelines] == ["top", "bottom"]
    assert services.pipeline is services.pipelines[0]  # one-camera code keeps working
    assert len({id(p.store) for p in services.pipelines}) == 1  # one store, one process
    store = services.store

    def count(camera):
        return len(store.list_units(limit=500, filter=UnitFilter(camera=camera))[0])

    with TestClient(create_app(services)) as client:
        for p in services.pipelines:
            p.start()
        try:
            _wait(lambda: count("top") >= 6 and count("bottom") >= 2)
            health = client.get("/healthz").json()
            metrics = client.get("/metrics").text
        finally:
            assert stop_all(services.pipelines, 20)
        stopped = client.get("/healthz").json()
    store.close()

    assert health["status"] == "ok", health["problems"]
    by_id = {c["id"]: c for c in health["cameras"]}
    assert list(by_id) == ["top", "bottom"]
    assert by_id["top"]["trigger"]["mode"] == "frame" and by_id["bottom"]["trigger"]["mode"] == "interval"
    assert all(c["running"] and c["source"]["up"] for c in by_id.values())
    # The interval camera reads frames at 20 fps but makes a unit every 0.2 s only.
    assert by_id["bottom"]["source"]["frames_read"] > 2 * by_id["bottom"]["trigger"]["units"]
    assert health["frames_dropped"] == sum(c["frames_dropped"] for c in health["cameras"])
    for camera in ("top", "bottom"):
        assert f'qc_frames_read_total{{camera="{camera}"}}' in metrics
        assert f'qc_units_total{{camera="{camera}",verdict="pass"}}' in metrics
        assert f'qc_inference_seconds_count{{camera="{camera}"}}' in metrics
    # Stopped: each camera's problem is named by its camera.
    assert {p.split(":")[0] for p in stopped["problems"]} == {"camera top", "camera bottom"}
    assert all("not running" in p for p in stopped["problems"])


def test_a_lost_camera_is_named_while_the_other_keeps_inspecting(store, tiny_model_dir, tmp_path,
                                                               make_client):
    """Frame checks and reconnects are per camera: one camera's folder vanishes and comes back,
    the other camera's wrong-size frames are skipped and counted under its own name."""
    import cv2
    import numpy as np

    from tests.edge.pipeline_helpers import make_pipeline
    from edge.line.sources import FolderSource, SimulatedSource
    from edge.line.sources.config import FolderSourceConfig, SimulatedSourceConfig
    from qc.inference import Inferencer

    inferencer = Inferencer(tiny_model_dir, threads=1)
    folder = tmp_path / "shots"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    lost = make_pipeline(
        FolderSource(FolderSourceConfig(type="folder", path=folder, fps=30, loop=True,
                                        reconnect_initial_s=0.02, reconnect_max_s=0.05)),
        inferencer, store, "station.id=station-1", "station.line=line-1", camera="side")
    steady = make_pipeline(
        SimulatedSource(SimulatedSourceConfig(fps=30, size_px=(96, 128))), inferencer, store,
        "station.id=station-1", "station.line=line-1", "source.expect_size_px=[64, 64]", camera="top")
    client = make_client(pipelines=[lost, steady])

    def units(camera):
        return len(store.list_units(limit=500, filter=UnitFilter(camera=camera))[0])

    for p in (lost, steady):
        p.start()
    try:
        _wait(lambda: units("side") >= 3)
        folder.rename(tmp_path / "unmounted")
        _wait(lambda: lost.snapshot()["source"]["reconnects"] >= 2)
        health = client.get("/healthz").json()
        metrics = client.get("/metrics").text
        (tmp_path / "unmounted").rename(folder)
        before = units("side")
        _wait(lambda: units("side") > before)
    finally:
        for p in (lost, steady):
            p.stop()
    side_problems = [p for p in health["problems"] if p.startswith("camera side: source down since")]
    assert len(side_problems) == 1 and "shots" in side_problems[0]
    assert not [p for p in health["problems"] if p.startswith("camera top:")]
    top = next(c for c in health["cameras"] if c["id"] == "top")
    assert top["running"] and top["frames_invalid"]["wrong_size"] >= 1 and units("top") == 0
    assert 'qc_source_up{camera="side"} 0.0' in metrics and 'qc_source_up{camera="top"} 1.0' in metrics
    assert 'qc_frames_invalid_total{camera="top",reason="wrong_size"}' in metrics
