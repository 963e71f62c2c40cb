"""POST /inspect limits: image headers read without decoding (decompression bombs refused), bodies
counted as they arrive, images too small to inspect refused, inspections at once bounded."""

from __future__ import annotations

import asyncio
import struct
import threading
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest

from edge.api.image_header import ImageHeader, read_header
from edge.config import EdgeConfig
from qc.inference import Inferencer


@pytest.fixture
def client(make_client, tiny_model_dir):
    config = EdgeConfig.model_validate({"api": {"max_upload_mb": 1, "max_upload_megapixels": 1}})
    return make_client(config, inferencer=Inferencer(tiny_model_dir, threads=1))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG of zeros: a few kB of file, width x height bytes once decoded."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + width)  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tiff", ".webp"])
def test_headers_give_the_size_without_decoding(ext):
    image = np.zeros((37, 53, 3), np.uint8)
    data = cv2.imencode(ext, image)[1].tobytes()
    header = read_header(data)
    assert header is not None and (header.width, header.height) == (53, 37)
    assert read_header(data[:10]) is None  # cut short: unknown, not a crash


def test_progressive_jpeg_lossless_webp_and_16_bit_tiff():
    grey16 = np.zeros((29, 31), np.uint16)
    assert read_header(cv2.imencode(".tiff", grey16)[1].tobytes()) == ImageHeader("TIFF", 31, 29)
    rgb = np.zeros((29, 31, 3), np.uint8)
    jpeg = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert read_header(jpeg) == ImageHeader("JPEG", 31, 29)
    lossless = cv2.imencode(".webp", rgb, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()
    assert read_header(lossless) == ImageHeader("WebP", 31, 29)
    assert read_header(b"P5\n31 29\n65535\n") is None  # PGM: not a station format


def test_a_decompression_bomb_is_413_before_decoding(client):
    bomb = png_bomb(4000, 4000)  # 16 megapixels, a 16 MB buffer once decoded, from ~16 kB
    assert len(bomb) < 64 * 1024
    assert cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_UNCHANGED).shape == (4000, 4000)
    res = client.post("/api/v1/inspect", files={"image": ("bomb.png", bomb, "image/png")})
    assert res.status_code == 413, res.text
    detail = res.json()["detail"]
    assert "4000 x 4000" in detail and "16.0 megapixels" in detail and "max_upload_megapixels" in detail


def test_an_inspection_costs_a_few_bytes_per_pixel(make_client, tiny_model_dir):
    """A PNG of zeros, the issue's 47 kB bomb scaled down: all padding, the costliest path. It
    took ~37 bytes a pixel (every tile and tile map at once, several float copies of the image in
    the post-processing and the pictures); the decoded image, heatmap and pictures need ~15."""
    config = EdgeConfig.model_validate({"api": {"max_upload_megapixels": 4}})
    client = make_client(config, inferencer=Inferencer(tiny_model_dir, threads=1))
    side = 1500
    tracemalloc.start()
    try:
        res = client.post("/api/v1/inspect", files={"image": ("zeros.png", png_bomb(side, side))})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.status_code == 200 and res.json()["image_size_px"] == [side, side]
    assert peak / side**2 < 17


def test_the_default_pixel_limit_suits_a_small_station(make_client, tiny_model_dir):
    """At ~18 bytes a pixel, 24 MP (a 6000 x 4000 photo) holds ~0.45 GB while it is inspected; the
    old 50 MP default let a 47 kB PNG take 2.4 GB for 55 s on a 2-core station."""
    client = make_client(inferencer=Inferencer(tiny_model_dir, threads=1))  # the default config
    res = client.post("/api/v1/inspect", files={"image": ("bomb.png", png_bomb(5000, 5000))})
    assert res.status_code == 413 and "the limit is 24 megapixels" in res.json()["detail"]


def test_a_large_jpeg_is_413_and_one_under_the_limit_is_inspected(client):
    wide = cv2.imencode(".jpg", np.full((500, 2100, 3), 200, np.uint8))[1].tobytes()  # 1.05 MP
    res = client.post("/api/v1/inspect", files={"image": ("wide.jpg", wide, "image/jpeg")})
    assert res.status_code == 413 and "2100 x 500" in res.json()["detail"]
    ok = cv2.imencode(".jpg", np.full((400, 600, 3), 200, np.uint8))[1].tobytes()  # 0.24 MP
    res = client.post("/api/v1/inspect", files={"image": ("ok.jpg", ok, "image/jpeg")})
    assert res.status_code == 200 and res.json()["image_size_px"] == [400, 600]


def test_an_unknown_format_is_422_naming_the_formats(client):
    pgm = cv2.imencode(".pgm", np.zeros((8, 8), np.uint8))[1].tobytes()
    res = client.post("/api/v1/inspect", files={"image": ("a.pgm", pgm, "image/x-portable-graymap")})
    assert res.status_code == 422 and "PNG, JPEG, BMP, TIFF, WebP" in res.json()["detail"]


def test_a_chunked_upload_is_cut_off_at_the_limit(client):
    """No Content-Length, so nothing to refuse up front: the body is counted as it arrives and
    reading stops just past the 1 MB limit, rather than 30 MB spooled to a temporary file first."""
    boundary = "qc-test-boundary"
    chunk = bytes(64 * 1024)
    sent = 0

    async def body():
        nonlocal sent
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.png"'
               "\r\nContent-Type: image/png\r\n\r\n").encode()
        for _ in range(30 * 16):  # 30 MB
            sent += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    async def post() -> httpx.Response:
        # httpx's ASGI transport hands the app each chunk only when the app asks for the next one
        # (the TestClient reads the whole body first), so `sent` counts what the server consumed.
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://station") as http:
            return await http.post(
                "/api/v1/inspect", content=body(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )

    res = asyncio.run(post())
    assert res.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in res.request.headers
    assert res.status_code == 413 and "1 MB" in res.json()["detail"]
    assert sent <= 1024 * 1024 + 3 * len(chunk)


@pytest.mark.parametrize("height, width", [(1, 1), (3, 5), (8, 8), (31, 400)])
def test_images_too_small_to_inspect_are_422(client, height, width):
    """The tiny model cuts 64 px tiles: under 32 px a side, the tile is mostly mirrored copies."""
    small = cv2.imencode(".png", np.full((height, width, 3), 200, np.uint8))[1].tobytes()
    res = client.post("/api/v1/inspect", files={"image": ("small.png", small, "image/png")})
    assert res.status_code == 422, res.text
    detail = res.json()["detail"]
    assert f"{width} x {height} pixels" in detail and "at least 32 px a side" in detail
    assert "64 px tiles" in detail


def test_the_smallest_inspectable_image_is_half_a_tile(client, tiny_model_dir):
    assert Inferencer(tiny_model_dir).min_side_px == 32
    edge = cv2.imencode(".png", np.full((32, 400, 3), 200, np.uint8))[1].tobytes()
    res = client.post("/api/v1/inspect", files={"image": ("edge.png", edge, "image/png")})
    assert res.status_code == 200 and res.json()["verdict"] == "pass"


class GatedInferencer:
    """The real model, held inside its inspection until the test opens the gate."""

    def __init__(self, inferencer: Inferencer):
        self._inferencer = inferencer
        self.inside = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self._inferencer, name)

    def infer(self, image):
        self.inside.set()
        assert self.gate.wait(5), "a second inspection ran while the first was held"
        return self._inferencer.infer(image)


def test_inspections_beyond_the_limit_are_503_with_retry_after(make_client, tiny_model_dir):
    gated = GatedInferencer(Inferencer(tiny_model_dir, threads=1))
    client = make_client(inferencer=gated)  # the default: one inspection at a time
    files = {"image": ("a.png", cv2.imencode(".png", np.full((64, 64, 3), 200, np.uint8))[1].tobytes())}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.post, "/api/v1/inspect", files=files)
        assert gated.inside.wait(10)
        try:
            busy = client.post("/api/v1/inspect", files=files)
        finally:
            gated.gate.set()
        assert first.result(timeout=30).status_code == 200
    assert busy.status_code == 503, busy.text
    assert int(busy.headers["Retry-After"]) >= 1
    assert "max_concurrent_inspections" in busy.json()["detail"]
    assert client.post("/api/v1/inspect", files=files).status_code == 200  # the slot is free again
