"""POST /api/v1/inspect with the tiny dark-spot model: real onnxruntime, real multipart uploads."""

import base64

import cv2
import numpy as np
import pytest

from edge.config import EdgeConfig
from qc.inference import Inferencer


@pytest.fixture
def inspect_client(make_client, tiny_model_dir):
    config = EdgeConfig.model_validate({"api": {"max_upload_mb": 0.05}})
    return make_client(config, inferencer=Inferencer(tiny_model_dir, threads=1))


def png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def test_a_dark_spot_fails_and_comes_back_with_its_heatmap(inspect_client):
    image = np.full((96, 128, 3), 200, np.uint8)
    image[40:52, 60:76] = 0
    res = inspect_client.post("/api/v1/inspect", files={"image": ("panel.png", png(image), "image/png")})
    assert res.status_code == 200, res.text
    out = res.json()
    assert out["verdict"] == "fail" and out["image_size_px"] == [96, 128]
    x, y, w, h = out["defects"][0]["box"]
    assert 56 <= x <= 62 and 36 <= y <= 42 and w >= 12 and h >= 8
    heatmap = cv2.imdecode(np.frombuffer(base64.b64decode(out["heatmap_png_base64"]), np.uint8),
                           cv2.IMREAD_COLOR)
    assert heatmap.shape == (96, 128, 3)
    clean = inspect_client.post("/api/v1/inspect",
                                files={"image": ("ok.png", png(np.full((64, 64, 3), 200, np.uint8)))})
    assert clean.json()["verdict"] == "pass" and clean.json()["defects"] == []


def test_grey_and_16_bit_uploads_are_read(inspect_client):
    grey16 = np.full((64, 64), 50000, np.uint16)
    data = cv2.imencode(".png", grey16)[1].tobytes()
    res = inspect_client.post("/api/v1/inspect", files={"image": ("g.png", data, "image/png")})
    assert res.status_code == 200 and res.json()["verdict"] == "pass"


def test_not_an_image_is_422_naming_the_problem(inspect_client):
    res = inspect_client.post("/api/v1/inspect",
                              files={"image": ("notes.txt", b"hello, not pixels", "text/plain")})
    assert res.status_code == 422
    detail = res.json()["detail"]
    assert "notes.txt" in detail and "text/plain" in detail and "not an image" in detail
    res = inspect_client.post("/api/v1/inspect", files={"photo": ("a.png", b"x", "image/png")})
    assert res.status_code == 422 and "'image'" in res.json()["detail"]
    assert inspect_client.post("/api/v1/inspect", data={"image": "text"}).status_code == 422


def test_uploads_over_the_limit_are_413(inspect_client, rng):
    noise = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)  # ~120 kB of PNG > 0.05 MB
    res = inspect_client.post("/api/v1/inspect", files={"image": ("big.png", png(noise), "image/png")})
    assert res.status_code == 413 and "0.05 MB" in res.json()["detail"]


def test_without_a_model_inspect_is_503(api):
    res = api.post("/api/v1/inspect", files={"image": ("a.png", png(np.zeros((8, 8, 3), np.uint8)))})
    assert res.status_code == 503 and "no model" in res.json()["detail"]


def test_model_route_shows_the_card(inspect_client):
    out = inspect_client.get("/api/v1/model").json()
    assert out["version"] == "1.0.0" and "thresholds" in out["card"]
