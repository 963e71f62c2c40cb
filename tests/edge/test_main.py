"""The service as an operator runs it: `python -m qc edge ...` in a subprocess, through REST."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as res:
            return res.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@pytest.mark.slow
def test_qc_edge_end_to_end(tmp_path, tiny_model_dir):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "var"
    log = open(tmp_path / "edge.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qc", "edge", "--config", "configs/edge/default.yaml",
         f"api.port={port}", f"storage.data_dir={data_dir}", f"model.dir={tiny_model_dir}",
         "source.fps=10", "source.size_px=[240,320]"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "edge.log").read_text()
            raw = _get(f"{base}/healthz")
            if raw:
                health = json.loads(raw)
                if health["units"] >= 3:
                    break
            time.sleep(0.2)
        assert health and health["units"] >= 3, (health, (tmp_path / "edge.log").read_text())
        assert health["status"] == "ok", health["problems"]
        assert health["model"]["version"] == tiny_model_dir.name

        page = json.loads(_get(f"{base}/api/v1/units?limit=2"))
        assert len(page["items"]) == 2 and page["next"]
        times = [u["captured_at"] for u in page["items"]]
        assert times == sorted(times, reverse=True)
        unit = json.loads(_get(f"{base}/api/v1/units/{page['items'][-1]['id']}"))
        assert unit["verdict"] in ("pass", "fail")
        png = _get(f"{base}{unit['links']['overlay']}")
        overlay = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert overlay.shape == (240, 320, 3)
        assert b"/api/v1/units" in _get(f"{base}/")
        assert (data_dir / "qc.db").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "edge.log").read_text()
    assert "stopped:" in (tmp_path / "edge.log").read_text()


def test_bad_config_exits_2_naming_the_key(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "qc", "edge", "--config", "configs/edge/default.yaml",
         "api.prot=1", f"storage.data_dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 2
    assert "api.prot: unknown key" in res.stderr


def _elsewhere(tmp_path, station_yaml: str) -> tuple[Path, Path, dict]:
    """A station config in tmp_path/etc/qc/, a working directory in tmp_path/home/op, and an
    environment that still imports this checkout's code from there."""
    config_dir = tmp_path / "etc" / "qc"
    config_dir.mkdir(parents=True)
    (config_dir / "station.yaml").write_text(station_yaml)
    cwd = tmp_path / "home" / "op"
    cwd.mkdir(parents=True)
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": path}
    return config_dir, cwd, env


def test_a_missing_model_names_the_folder_searched_and_why(tmp_path):
    config_dir, cwd, env = _elsewhere(tmp_path, "storage: {data_dir: data}\n")  # model.dir: default
    res = subprocess.run(
        [sys.executable, "-m", "qc", "edge", "--config", str(config_dir / "station.yaml")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 2, res.stderr
    assert f"model refused: {config_dir / 'models' / 'default'} holds no model" in res.stderr
    assert (f"model.dir was not set in {config_dir / 'station.yaml'}: its default 'models/default' "
            f"was resolved against that file's folder {config_dir}") in res.stderr
    assert str(cwd) not in res.stderr


@pytest.mark.slow
def test_qc_edge_started_elsewhere_finds_the_paths_of_its_config(tmp_path, tiny_model_dir):
    port = _free_port()
    config_dir, cwd, env = _elsewhere(
        tmp_path,
        "model: {dir: models/dark}\nstorage: {data_dir: data}\n"
        f"source: {{type: simulated, fps: 10, size_px: [120, 160]}}\napi: {{port: {port}}}\n",
    )
    shutil.copytree(tiny_model_dir, config_dir / "models" / "dark")
    log_path = tmp_path / "edge.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(  # the config named relative to the working directory
            [sys.executable, "-m", "qc", "edge", "--config", "../../etc/qc/station.yaml"],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        health = _wait_units(proc, f"http://127.0.0.1:{port}", 2, log_path)
        assert health["model"]["dir"] == str(config_dir / "models" / "dark"), health["model"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log_path.read_text()
    assert (config_dir / "data" / "qc.db").is_file()
    assert "reads need no key: the API listens on loopback" in log_path.read_text()
    assert not list(cwd.iterdir())  # nothing written where the station happened to start


@pytest.mark.parametrize("host, require_keys, level, words", [
    ("0.0.0.0", False, "WARNING", "reads are open: anyone who can reach 0.0.0.0:8000"),
    ("0.0.0.0", "auto", "INFO", "reads need a viewer key (api.host 0.0.0.0 is not loopback"),
    ("127.0.0.1", True, "INFO", "reads need a viewer key (api.require_keys: true)"),
    ("127.0.0.1", "auto", "INFO", "reads need no key: the API listens on loopback 127.0.0.1"),
])
def test_the_station_says_at_start_who_may_read(caplog, host, require_keys, level, words):
    from edge.api.config import ApiConfig
    from edge.main import log_read_access

    caplog.set_level(logging.INFO, logger="edge")
    log_read_access(ApiConfig(host=host, require_keys=require_keys))
    (record,) = caplog.records
    assert record.levelname == level and words in record.getMessage(), record.getMessage()


def test_edge_service_does_not_load_torch():
    modules = ["edge", "edge.config", "edge.line.sources", "edge.line.pipeline", "edge.storage.store", "edge.storage.files",
               "edge.api.app", "edge.main", "qc.inference", "qc.synth.panels", "uvicorn"]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def _start_edge(tmp_path, data_dir, model_dir, port, log_name):
    log = open(tmp_path / log_name, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qc", "edge", "--config", "configs/edge/default.yaml",
         f"api.port={port}", f"storage.data_dir={data_dir}", f"model.dir={model_dir}",
         "source.fps=15", "source.size_px=[120,160]", "pipeline.inference_threads=1"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
    )
    log.close()
    return proc


def _wait_units(proc, base, at_least, log_path, timeout_s=30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    health = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()
        raw = _get(f"{base}/healthz")
        if raw:
            health = json.loads(raw)
            if health["units"] >= at_least:
                return health
        time.sleep(0.1)
    raise AssertionError((health, log_path.read_text()))


def _rows(data_dir):
    import sqlite3

    with sqlite3.connect(data_dir / "qc.db") as db:
        return db.execute(
            "SELECT id, original_path, heatmap_path, overlay_path FROM units").fetchall()


@pytest.mark.slow
def test_sigkill_then_restart_leaves_a_consistent_record(tmp_path, tiny_model_dir):
    data_dir = tmp_path / "var"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    first = _start_edge(tmp_path, data_dir, tiny_model_dir, port, "first.log")
    try:
        _wait_units(first, base, 5, tmp_path / "first.log")
        # Ask for pictures, so that renders made on request are on disk (or being made) at the kill.
        for unit in json.loads(_get(f"{base}/api/v1/units?limit=3"))["items"]:
            assert _get(f"{base}{unit['links']['overlay']}") and _get(f"{base}{unit['links']['heatmap']}")
    finally:
        first.send_signal(signal.SIGKILL)  # no drain, no cleanup: as a power cut for the process
        first.wait(timeout=10)
    rows_at_kill = len(_rows(data_dir))
    assert rows_at_kill >= 5
    # Debris of a kill between file write and row commit, and of an interrupted atomic write,
    # planted where the station was writing (the kill above may or may not have left some).
    day = sorted((data_dir / "units").iterdir())[-1]
    planted = day / ("0" * 32)
    planted.mkdir()
    (planted / "image.jpg").write_bytes(b"\xff\xd8 written, never recorded")
    (planted / ".heatmap.png.k1ll3d.tmp").write_bytes(b"half")
    render_tmp = data_dir / "units" / ".render-tmp"  # where a render killed mid-write leaves debris
    render_tmp.mkdir(exist_ok=True)
    (render_tmp / ".overlay.png.k1ll3d.tmp").write_bytes(b"half")

    second = _start_edge(tmp_path, data_dir, tiny_model_dir, port, "second.log")
    try:
        health = _wait_units(second, base, rows_at_kill + 3, tmp_path / "second.log")
        assert health["status"] == "ok", health["problems"]
    finally:
        second.send_signal(signal.SIGTERM)
        code = second.wait(timeout=30)
    log = (tmp_path / "second.log").read_text()
    assert code == 0, log
    assert "startup sweep" in log and not planted.exists()

    rows = _rows(data_dir)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) >= rows_at_kill + 3
    # No row points at a missing file: the image and the heatmap values are written with the unit;
    # the colour heatmap and the overlay are renders made from them on first request.
    required, renders = set(), set()
    for unit_id, original, heatmap, overlay in rows:
        values = f"{original.rsplit('/', 1)[0]}/heatmap-values.png"
        required |= {original, values}
        renders |= {heatmap, overlay}
        assert cv2.imread(str(data_dir / original)) is not None, (unit_id, original)
        assert cv2.imread(str(data_dir / values), cv2.IMREAD_GRAYSCALE) is not None, unit_id
    folders = {p.name for p in (data_dir / "units").glob("*/*") if p.is_dir() and p != render_tmp}
    assert folders == set(ids)  # no orphan unit folder
    assert not list(data_dir.rglob("*.tmp"))
    on_disk = {str(p.relative_to(data_dir)) for p in (data_dir / "units").rglob("*") if p.is_file()}
    assert required <= on_disk and on_disk - required <= renders  # no orphan file
    rendered = on_disk & renders
    assert len(rendered) >= 6  # the pictures asked for before the kill
    for rel in rendered:  # a render on disk is whole: written atomically, even across the kill
        assert cv2.imread(str(data_dir / rel)) is not None, rel
