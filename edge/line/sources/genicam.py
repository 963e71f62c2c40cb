"""A GenICam camera (GigE Vision, USB3 Vision, ...) through its vendor's GenTL producer (.cti),
read with harvesters.

harvesters is an optional extra (``pip install 'garment-qc[genicam]'``): it is imported when the
source opens, so a station without it still starts, and /healthz says what is missing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, get_args

import cv2
import numpy as np

from edge.line.sources.base import Pacer, ReconnectingSource, SourceDown, register
from edge.line.sources.config import GenicamPixelFormat, GenicamSourceConfig

MISSING_EXTRA = "the genicam source needs the optional extra: pip install 'garment-qc[genicam]'"

# PFNC name -> (values per pixel, significant bits, OpenCV conversion to RGB or None).
# Bayer names give the sensor's top-left 2x2 block; OpenCV's *RGGB-style codes name it the same way.
PIXEL_FORMATS: dict[str, tuple[int, int, int | None]] = {
    "Mono8": (1, 8, cv2.COLOR_GRAY2RGB),
    "Mono10": (1, 10, cv2.COLOR_GRAY2RGB),
    "Mono12": (1, 12, cv2.COLOR_GRAY2RGB),
    "Mono14": (1, 14, cv2.COLOR_GRAY2RGB),
    "Mono16": (1, 16, cv2.COLOR_GRAY2RGB),
    "RGB8": (3, 8, None),
    "BGR8": (3, 8, cv2.COLOR_BGR2RGB),
    "RGBa8": (4, 8, cv2.COLOR_RGBA2RGB),
    "BGRa8": (4, 8, cv2.COLOR_BGRA2RGB),
    "BayerRG8": (1, 8, cv2.COLOR_BayerRGGB2RGB),
    "BayerGR8": (1, 8, cv2.COLOR_BayerGRBG2RGB),
    "BayerGB8": (1, 8, cv2.COLOR_BayerGBRG2RGB),
    "BayerBG8": (1, 8, cv2.COLOR_BayerBGGR2RGB),
}
assert set(PIXEL_FORMATS) == set(get_args(GenicamPixelFormat)), "config and converter disagree"


def genicam_to_rgb(data: np.ndarray, height: int, width: int, pixel_format: str) -> np.ndarray:
    """One buffer's pixels (flat, as harvesters gives them) as a uint8 RGB (height, width, 3) image.

    More than 8 significant bits keep the top 8. Raises ValueError naming the format or the size
    that does not fit."""
    if pixel_format not in PIXEL_FORMATS:
        raise ValueError(
            f"pixel format {pixel_format!r} is not supported; set source.pixel_format to one of "
            + ", ".join(PIXEL_FORMATS)
        )
    channels, bits, code = PIXEL_FORMATS[pixel_format]
    values = np.asarray(data).ravel()
    if bits > 8 and values.dtype == np.uint8:
        values = values.view("<u2")  # raw bytes: GenICam pixels are little-endian
    expected = height * width * channels
    if values.size != expected:
        raise ValueError(
            f"{pixel_format} buffer holds {values.size} values; {height}x{width} needs {expected}"
        )
    if bits > 8:
        values = (values >> (bits - 8)).astype(np.uint8)
    elif values.dtype != np.uint8:
        values = values.astype(np.uint8)
    image = values.reshape((height, width, channels) if channels > 1 else (height, width))
    if code is None:
        return np.ascontiguousarray(image)
    return cv2.cvtColor(image, code)


@register("genicam")
class GenicamSource(ReconnectingSource):
    """Opens the producer and the camera, applies the config's features, then fetches buffers
    until stopped. A failed open or fetch raises SourceDown: the reconnect loop backs off and
    retries, and /healthz shows the message."""

    def __init__(self, config: GenicamSourceConfig):
        super().__init__(config)
        self.pacer = Pacer(None)  # the camera delivers on its own clock
        c = config
        which = (
            f"serial {c.serial_number}" if c.serial_number
            else f"model {c.model}" if c.model
            else f"#{c.device_index or 0}"
        )
        self.what = f"genicam camera {which} via {c.cti.name}"

    def session(self, stop: threading.Event) -> Iterator[np.ndarray]:
        harvester = self._open_producer()
        acquirer = None
        try:
            acquirer = self._open_camera(harvester)
            while not stop.is_set():
                image = self._fetch(acquirer)
                if image is not None:
                    yield image
        finally:
            _release(acquirer, harvester)

    def _open_producer(self):
        cti = self.config.cti
        if not cti.is_file():
            raise SourceDown(f"{self.what} cannot be opened: GenTL producer file {cti} not found")
        try:
            from harvesters.core import Harvester
        except ImportError as exc:
            raise SourceDown(f"{MISSING_EXTRA} ({exc})") from exc
        harvester = Harvester()
        try:
            harvester.add_file(str(cti))
            harvester.update()
        except Exception as exc:  # genicam raises its own classes; each means "no producer"
            _release(None, harvester)
            raise SourceDown(f"{self.what} cannot be opened: producer {cti}: {exc}") from exc
        return harvester

    def _open_camera(self, harvester):
        c = self.config
        devices = list(harvester.device_info_list)
        seen = ", ".join(
            f"{getattr(d, 'model', '?')} serial {getattr(d, 'serial_number', '?')}" for d in devices
        ) or "none"
        search: dict[str, str] = {}
        if c.serial_number:
            search["serial_number"] = c.serial_number
        if c.model:
            search["model"] = c.model
        index = c.device_index or 0
        if not devices:
            raise SourceDown(f"{self.what} cannot be opened: no camera found through {c.cti} (is "
                             "the camera connected, and is the file the vendor's GenTL producer?)")
        if not search and index >= len(devices):
            raise SourceDown(f"{self.what} cannot be opened: the producer lists {len(devices)} "
                             f"camera(s) ({seen})")
        try:
            acquirer = harvester.create(search or index)
        except Exception as exc:
            raise SourceDown(f"{self.what} cannot be opened: {exc} (cameras seen: {seen})") from exc
        try:
            self._apply_settings(acquirer.remote_device.node_map)
            acquirer.start()
        except BaseException:
            _release(acquirer, None)
            raise
        return acquirer

    def _apply_settings(self, node_map) -> None:
        """Before start: a camera locks PixelFormat and often the rate while it acquires."""
        c = self.config
        settings: dict[str, Any] = {}
        if c.pixel_format is not None:
            settings["PixelFormat"] = c.pixel_format
        if c.fps is not None:
            if hasattr(node_map, "AcquisitionFrameRateEnable"):  # SFNC; not every camera has it
                settings["AcquisitionFrameRateEnable"] = True
            settings["AcquisitionFrameRate"] = c.fps
        settings.update(c.features)
        for name, value in settings.items():
            if not hasattr(node_map, name):
                raise SourceDown(f"{self.what}: the camera has no feature {name}")
            try:
                getattr(node_map, name).value = value
            except Exception as exc:  # missing node, read-only, out of range
                detail = str(exc) or type(exc).__name__
                raise SourceDown(f"{self.what}: cannot set {name} = {value!r}: {detail}") from exc

    def _fetch(self, acquirer) -> np.ndarray | None:
        """The next image; None for a buffer without image data (counted as skipped)."""
        try:
            buffer = acquirer.fetch(timeout=self.config.timeout_s)
        except Exception as exc:
            if type(exc).__name__ == "TimeoutException":
                raise SourceDown(
                    f"{self.what} stopped delivering frames: none within {self.config.timeout_s} s"
                ) from exc
            raise SourceDown(f"{self.what} stopped delivering frames: {exc}") from exc
        with buffer:  # leaving it hands the buffer back to the producer, so copy first
            payload = buffer.payload
            components = getattr(payload, "components", None) or []
            if not components or components[0].data is None:
                self.status.skip("incomplete", f"{self.what}: a buffer without image data")
                return None
            part = components[0]
            data = np.array(part.data, copy=True)
            height, width, pixel_format = int(part.height), int(part.width), str(part.data_format)
        try:
            return genicam_to_rgb(data, height, width, pixel_format)
        except ValueError as exc:
            raise SourceDown(f"{self.what}: {exc}") from exc


def _release(acquirer, harvester) -> None:
    """Stop and hand back the camera, then the producer; a camera already gone is fine."""
    if acquirer is not None:
        for step in (acquirer.stop, acquirer.destroy):
            try:
                step()
            except Exception:  # noqa: BLE001 - closing a lost camera may fail; it is closed anyway
                pass
    if harvester is not None:
        try:
            harvester.reset()
        except Exception:  # noqa: BLE001
            pass
