"""The service as an operator runs it: `python -m qc edge ...` in a subprocess, through REST."""

import json
import os
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


def test_edge_service_does_not_load_torch():
    modules = ["edge", "edge.config", "edge.sources", "edge.pipeline", "edge.store", "edge.files",
               "edge.app", "edge.service", "qc.inference", "qc.synth.panels", "uvicorn"]
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
