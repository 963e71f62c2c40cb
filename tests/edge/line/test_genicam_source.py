"""The genicam source (harvesters, the optional extra ``genicam``).

No GenICam camera exists on a test machine. What runs everywhere: the config, the pixel-format
conversion on synthetic buffers, the errors for a missing extra or producer file (also through
/healthz with the real pipeline), and the fetch loop driven by ``FakeHarvester`` — a fake, clearly
so, standing in for harvesters.core only to feed buffers through the source's fetch/convert/reopen
path. Where harvesters is installed, the last test reads real buffers through the real library from
the simulated GenTL producer the ``genicam`` wheel ships (viky.cti); elsewhere it is skipped.
"""

import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from edge.api.app import ModelInfo, Services, create_app
from edge.config import EdgeConfig, load_config
from edge.line.sources import GenicamSource, build_source
from edge.line.sources.config import GenicamSourceConfig
from edge.line.sources.genicam import MISSING_EXTRA, PIXEL_FORMATS, genicam_to_rgb
from qc.inference import Inferencer
from qc.overrides import ConfigError
from tests.edge.pipeline_helpers import make_pipeline
from tests.edge.source_helpers import FAST_RETRY, run_in_thread, status_after_failed_opens, wait_for


@pytest.fixture
def cti(tmp_path) -> Path:
    """A file where the producer should be (its contents matter only to a real harvesters)."""
    path = tmp_path / "vendor" / "producer.cti"
    path.parent.mkdir()
    path.write_bytes(b"\x7fELF not really a producer")
    return path


# --- config -----------------------------------------------------------------------------------


def test_genicam_config_is_strict_and_makes_the_producer_path_absolute(tmp_path, monkeypatch):
    ok = [
        {"type": "genicam", "cti": "/opt/mvIMPACT_Acquire/lib/x86_64/mvGenTLProducer.cti"},
        {"type": "genicam", "cti": "p.cti", "serial_number": "21345678", "pixel_format": "BayerRG8",
         "fps": 15, "timeout_s": 2, "features": {"ExposureTime": 5000, "Gain": 2.5,
                                                 "ReverseX": True, "ExposureAuto": "Off"}},
        {"type": "genicam", "cti": "p.cti", "model": "acA1920-40gc"},
        {"type": "genicam", "cti": "p.cti", "device_index": 2, "expect_size_px": [1200, 1920]},
    ]
    for source in ok:
        EdgeConfig.model_validate({"source": source})
    bad = [
        {"type": "genicam"},  # cti is required
        {"type": "genicam", "cti": "p.cti", "serial": "123"},  # unknown key
        {"type": "genicam", "cti": "p.cti", "device_index": -1},
        {"type": "genicam", "cti": "p.cti", "device_index": 1, "serial_number": "123"},
        {"type": "genicam", "cti": "p.cti", "pixel_format": "YUV422_8"},
        {"type": "genicam", "cti": "p.cti", "fps": 0},
        {"type": "genicam", "cti": "p.cti", "timeout_s": 0},
        {"type": "genicam", "cti": "p.cti", "features": {"ExposureTime": [1, 2]}},
    ]
    for source in bad:
        with pytest.raises(ValidationError):
            EdgeConfig.model_validate({"source": source})

    yaml = tmp_path / "edge.yaml"
    yaml.write_text("source:\n  type: genicam\n  cti: sdk/producer.cti\n  sereal_number: '1'\n")
    with pytest.raises(ConfigError, match=r"source\.genicam\.sereal_number: unknown key"):
        load_config(yaml)
    monkeypatch.chdir(tmp_path)
    yaml.write_text("source:\n  type: genicam\n  cti: sdk/producer.cti\n")
    config = load_config(yaml)  # the producer need not exist to load: it is looked for at open
    assert config.source.cti == tmp_path / "sdk" / "producer.cti"
    yaml.write_text("cameras:\n  - id: top\n    source: {type: genicam, cti: a.cti}\n")
    assert load_config(yaml).cameras[0].source.cti == tmp_path / "a.cti"


# --- pixel formats ----------------------------------------------------------------------------


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """The raw sensor image a Bayer camera with this 2x2 pattern (e.g. 'RGGB') would give."""
    channel = {"R": 0, "G": 1, "B": 2}
    raw = np.zeros(rgb.shape[:2], np.uint8)
    for i, colour in enumerate(pattern):
        dy, dx = divmod(i, 2)
        raw[dy::2, dx::2] = rgb[dy::2, dx::2, channel[colour]]
    return raw


def test_every_supported_pixel_format_becomes_rgb_uint8():
    h, w = 6, 8
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 30
    grey = np.arange(h * w, dtype=np.uint8).reshape(h, w) * 5

    def check(flat, fmt, expected):
        out = genicam_to_rgb(flat, h, w, fmt)
        assert out.dtype == np.uint8 and out.shape == (h, w, 3) and out.flags.c_contiguous, fmt
        np.testing.assert_array_equal(out, expected, err_msg=fmt)

    grey_rgb = np.repeat(grey[..., None], 3, axis=2)
    check(grey.ravel(), "Mono8", grey_rgb)
    check(grey.astype(np.uint16).ravel() << 8 | 0xAB, "Mono16", grey_rgb)  # low byte dropped
    check(grey.astype(np.uint16).ravel() << 4 | 0x7, "Mono12", grey_rgb)
    check(grey.astype(np.uint16).ravel() << 2, "Mono10", grey_rgb)
    # A producer that hands over raw bytes: little-endian 16-bit words.
    check((grey.astype("<u2").ravel() << 8).view(np.uint8), "Mono16", grey_rgb)
    check(rgb.ravel(), "RGB8", rgb)
    check(rgb[..., ::-1].ravel(), "BGR8", rgb)
    check(np.dstack([rgb, np.full((h, w), 9, np.uint8)]).ravel(), "RGBa8", rgb)
    check(np.dstack([rgb[..., ::-1], np.full((h, w), 9, np.uint8)]).ravel(), "BGRa8", rgb)
    # Demosaicing a flat colour: the inside must come back as that colour, whichever 2x2 pattern
    # the sensor has (a wrong OpenCV code swaps red and blue or mixes green in).
    for fmt, pattern in [("BayerRG8", "RGGB"), ("BayerGR8", "GRBG"),
                         ("BayerGB8", "GBRG"), ("BayerBG8", "BGGR")]:
        out = genicam_to_rgb(mosaic(rgb, pattern).ravel(), h, w, fmt)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8
        np.testing.assert_allclose(out[2:-2, 2:-2].reshape(-1, 3).mean(0), [200, 100, 30],
                                   atol=2, err_msg=fmt)
    assert set(PIXEL_FORMATS) == {"Mono8", "Mono10", "Mono12", "Mono14", "Mono16", "RGB8", "BGR8",
                                  "RGBa8", "BGRa8", "BayerRG8", "BayerGR8", "BayerGB8", "BayerBG8"}


def test_bad_buffers_are_refused_by_name():
    with pytest.raises(ValueError, match="'YUV422_8' is not supported.*Mono8"):
        genicam_to_rgb(np.zeros(48, np.uint8), 6, 8, "YUV422_8")
    with pytest.raises(ValueError, match=r"RGB8 buffer holds 48 values; 6x8 needs 144"):
        genicam_to_rgb(np.zeros(48, np.uint8), 6, 8, "RGB8")


# --- open errors, down to /healthz --------------------------------------------------------------


def test_missing_producer_file_is_a_down_source_naming_the_path(tmp_path):
    missing = tmp_path / "sdk" / "mvGenTLProducer.cti"
    source = build_source(GenicamSourceConfig(type="genicam", cti=missing, **FAST_RETRY))
    assert isinstance(source, GenicamSource)
    snap = status_after_failed_opens(source)
    assert not snap["up"] and snap["down_since"]
    assert snap["last_error"] == (f"genicam camera #0 via mvGenTLProducer.cti cannot be opened: "
                                  f"GenTL producer file {missing} not found")


def test_missing_extra_is_a_down_source_saying_what_to_install(monkeypatch, cti):
    monkeypatch.setitem(sys.modules, "harvesters.core", None)  # import fails as if not installed
    source = GenicamSource(GenicamSourceConfig(type="genicam", cti=cti, **FAST_RETRY))
    frames, stop, thread = run_in_thread(source)
    wait_for(lambda: source.status.reconnects >= 1)
    stop.set()
    thread.join(2)
    assert frames == [] and source.status.last_error.startswith(MISSING_EXTRA)
    assert MISSING_EXTRA == ("the genicam source needs the optional extra: "
                             "pip install 'garment-qc[genicam]'")


@pytest.mark.parametrize("problem", ["missing extra", "missing producer"])
def test_healthz_names_the_genicam_problem(problem, monkeypatch, cti, store, tiny_model_dir):
    monkeypatch.setitem(sys.modules, "harvesters.core", None)
    path = cti if problem == "missing extra" else cti.with_name("gone.cti")
    source = GenicamSource(GenicamSourceConfig(type="genicam", cti=path, **FAST_RETRY))
    inferencer = Inferencer(tiny_model_dir, threads=1)
    pipe = make_pipeline(source, inferencer, store, "station.id=s", "station.line=l")
    model = ModelInfo(inferencer.name, inferencer.version, str(tiny_model_dir), {"image": 0.5})
    app = create_app(Services(config=EdgeConfig(), store=store, pipeline=pipe, model=model))
    expected = MISSING_EXTRA if problem == "missing extra" else f"GenTL producer file {path} not found"
    with TestClient(app) as client:
        pipe.start()
        try:
            wait_for(lambda: client.get("/healthz").json()["source"]["reconnects"] >= 1)
            health = client.get("/healthz").json()
        finally:
            pipe.stop()
    assert health["status"] == "degraded"
    assert health["source"]["type"] == "genicam" and health["source"]["up"] is False
    assert any(expected in p and "reconnecting" in p for p in health["problems"]), health["problems"]


# --- the fetch loop, fed by a fake harvesters -----------------------------------------------------


class FakeNode:
    def __init__(self, log, name, value):
        self._log, self._name, self._value = log, name, value

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, value):
        self._log.append(("set", self._name, value))
        self._value = value


class FakeTimeoutException(Exception):
    """Named as genicam.gentl's, which is how the source tells a timeout apart."""


FakeTimeoutException.__name__ = "TimeoutException"


class FakeHarvester:
    """FAKE harvesters.core.Harvester: one camera whose buffers are the queued (flat array,
    height, width, pixel format) tuples; an empty queue times out. It records every call so the
    test can check the order (settings before start) and that everything was handed back."""

    log: list = []
    buffers: list = []  # the camera's next buffers; an empty list times out after `timeout`

    def __init__(self):
        self.device_info_list = [types.SimpleNamespace(serial_number="S1", model="FakeCam")]

    def add_file(self, path):
        self.log.append(("add_file", path))

    def update(self):
        self.log.append(("update",))

    def create(self, key):
        self.log.append(("create", key))
        log, buffers = self.log, self.buffers
        nodes = {n: FakeNode(log, n, None) for n in
                 ("PixelFormat", "AcquisitionFrameRate", "AcquisitionFrameRateEnable", "ExposureTime")}

        class Buffer:
            def __init__(self, data, height, width, fmt):
                part = types.SimpleNamespace(data=data, height=height, width=width, data_format=fmt)
                self.payload = types.SimpleNamespace(components=[part])

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                # A real producer reuses the memory once the buffer is queued back.
                self.payload.components[0].data[...] = 0
                log.append(("queued back",))

        class Acquirer:
            remote_device = types.SimpleNamespace(node_map=types.SimpleNamespace(**nodes))

            def start(self):
                log.append(("start",))

            def fetch(self, *, timeout):
                deadline = time.monotonic() + timeout  # waits for a buffer, as a camera does
                while not buffers:
                    if time.monotonic() > deadline:
                        raise FakeTimeoutException(f"no buffer in {timeout} s")
                    time.sleep(0.005)
                return Buffer(*buffers.pop(0))

            def stop(self):
                log.append(("stop",))

            def destroy(self):
                log.append(("destroy",))

        return Acquirer()

    def reset(self):
        self.log.append(("reset",))


@pytest.fixture
def fake_harvesters(monkeypatch):
    FakeHarvester.log, FakeHarvester.buffers = [], []
    module = types.ModuleType("harvesters.core")
    module.Harvester = FakeHarvester
    monkeypatch.setitem(sys.modules, "harvesters", types.ModuleType("harvesters"))
    monkeypatch.setitem(sys.modules, "harvesters.core", module)
    return FakeHarvester


def test_fetch_loop_converts_buffers_and_reopens_after_a_timeout(fake_harvesters, cti):
    h, w = 4, 6
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 250, 10
    fake_harvesters.buffers += [
        (rgb[..., ::-1].ravel().copy(), h, w, "BGR8"),
        (np.full(h * w, 0x3000, np.uint16), h, w, "Mono16"),
        (mosaic(rgb, "RGGB").ravel(), h, w, "BayerRG8"),
    ]
    config = GenicamSourceConfig(
        type="genicam", cti=cti, serial_number="S1", fps=12.5, pixel_format="BGR8",
        features={"ExposureTime": 800}, timeout_s=1.0, **FAST_RETRY,
    )
    source = GenicamSource(config)
    assert source.pacer.fps is None  # the camera paces itself
    frames, stop, thread = run_in_thread(source)
    try:
        wait_for(lambda: len(frames) == 3)
        wait_for(lambda: source.status.reconnects >= 1)  # the empty queue timed out: reopened
        snap = source.status.snapshot()
        assert not snap["up"]
        assert "stopped delivering frames: none within 1.0 s" in snap["last_error"]
        fake_harvesters.buffers.append((rgb.ravel().copy(), h, w, "RGB8"))
        wait_for(lambda: len(frames) == 4)
        assert source.status.up and source.status.attempt == 0
    finally:
        stop.set()
        thread.join(3)
    assert not thread.is_alive()
    np.testing.assert_array_equal(frames[0].image, rgb)  # copied before the buffer went back
    np.testing.assert_array_equal(frames[1].image, np.full((h, w, 3), 0x30, np.uint8))
    assert frames[2].image.shape == (h, w, 3) and frames[2].image[..., 0].mean() > 200
    np.testing.assert_array_equal(frames[3].image, rgb)
    assert [f.index for f in frames] == [0, 1, 2, 3]

    log = fake_harvesters.log
    first_session = log[: log.index(("reset",)) + 1]
    assert first_session[:3] == [("add_file", str(cti)), ("update",), ("create", {"serial_number": "S1"})]
    settings = first_session[3: first_session.index(("start",))]
    assert settings == [("set", "PixelFormat", "BGR8"), ("set", "AcquisitionFrameRateEnable", True),
                        ("set", "AcquisitionFrameRate", 12.5), ("set", "ExposureTime", 800)]
    assert first_session.count(("queued back",)) == 3
    assert first_session[-3:] == [("stop",), ("destroy",), ("reset",)]  # released before reopening
    assert log[-3:] == [("stop",), ("destroy",), ("reset",)] and log.count(("start",)) >= 2


def test_a_setting_the_camera_lacks_is_a_down_source_and_the_camera_is_released(fake_harvesters, cti):
    config = GenicamSourceConfig(type="genicam", cti=cti, features={"Gian": 2}, **FAST_RETRY)
    source = GenicamSource(config)
    frames, stop, thread = run_in_thread(source)
    wait_for(lambda: source.status.reconnects >= 1)
    stop.set()
    thread.join(2)
    assert frames == []
    assert source.status.last_error == "genicam camera #0 via producer.cti: the camera has no feature Gian"
    log = fake_harvesters.log
    assert ("start",) not in log and log.count(("destroy",)) == log.count(("create", 0)) >= 1
    assert log.count(("reset",)) == log.count(("update",))


# --- the real library, with the simulated producer the genicam wheel ships ----------------------


def test_real_harvesters_reads_the_simulated_genicam_producer():
    pytest.importorskip("harvesters.core", reason="the optional extra genicam is not installed")
    import genicam

    viky = Path(genicam.__file__).with_name("viky.cti")
    if not viky.is_file():
        pytest.skip("this genicam wheel ships no simulated producer (viky.cti)")
    config = GenicamSourceConfig(type="genicam", cti=viky, serial_number="1", pixel_format="Mono8",
                                 fps=50, timeout_s=3, **FAST_RETRY)
    source = GenicamSource(config)
    frames, stop, thread = run_in_thread(source)
    try:
        wait_for(lambda: len(frames) >= 3)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive() and source.status.last_error is None
    image = frames[0].image
    assert image.shape == (400, 400, 3) and image.dtype == np.uint8
    assert (image[..., 0] == image[..., 1]).all()  # Mono8 made grey RGB
    missing = GenicamSource(config.model_copy(update={"serial_number": "99"}))
    frames, stop, thread = run_in_thread(missing)
    wait_for(lambda: missing.status.reconnects >= 1)
    stop.set()
    thread.join(5)
    assert frames == [] and "no device found" in missing.status.last_error
    assert "Viky serial 1" in missing.status.last_error  # says which cameras it did see
