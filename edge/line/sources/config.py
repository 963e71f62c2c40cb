"""The frame sources' configuration: a camera's ``source:`` section, one model per ``type``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from qc.strict import Strict

Size = tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]


class _SourceCommon(Strict):
    """What every source shares: how its frames are checked and how a lost source is retried."""

    expect_size_px: Size | None = Field(
        None, description="(height, width) every frame must have; others are skipped and counted"
    )
    max_frame_age_s: float | None = Field(
        None, gt=0, description="a frame older than this when inference takes it is skipped (stale)"
    )
    reconnect_initial_s: float = Field(
        0.5, gt=0, le=3600, description="first wait before reopening a lost source; doubles per try"
    )
    reconnect_max_s: float = Field(
        30.0, gt=0, le=3600, description="longest wait between two reopen tries"
    )


class SimulatedSourceConfig(_SourceCommon):
    """A simulated line: synthetic fabric panels, some of them defective (qc.synth)."""

    type: Literal["simulated"] = "simulated"
    fps: float = Field(2.0, gt=0, le=1000, description="panels per second")
    size_px: tuple[Annotated[int, Field(ge=64)], Annotated[int, Field(ge=64)]] = Field(
        (480, 640), description="panel size in pixels as (height, width)"
    )
    defect_probability: float = Field(0.3, ge=0, le=1, description="share of defective panels")
    seed: int = Field(0, description="random seed of the simulated line")
    max_frames: int | None = Field(
        None, ge=1, description="stop after this many panels (None: run until stopped)"
    )


class FolderSourceConfig(_SourceCommon):
    """Replay the image files of a folder (sorted by name) at a set rate."""

    type: Literal["folder"]
    path: Path = Field(description="folder of image files (png, jpg, bmp, tif, webp)")
    fps: float = Field(2.0, gt=0, le=1000, description="images per second")
    loop: bool = Field(False, description="start again at the first file after the last one")


class VideoSourceConfig(_SourceCommon):
    """A video file, decoded by OpenCV."""

    type: Literal["video"]
    path: Path = Field(description="video file (any container and codec OpenCV's FFmpeg reads)")
    fps: float | None = Field(
        None, gt=0, le=1000, description="frames per second; None: the file's own rate"
    )
    loop: bool = Field(False, description="start again at the first frame after the last one")


class CameraSourceConfig(_SourceCommon):
    """A camera on this machine, paced by the camera itself."""

    type: Literal["camera"]
    device: Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=r"^/dev/\S+$")] = Field(
        0, description="OpenCV device index, or a V4L2 device path such as /dev/video0"
    )
    fps: float | None = Field(None, gt=0, le=1000, description="rate asked of the camera")
    capture_size_px: Size | None = Field(
        None, description="(height, width) asked of the camera; None: its default"
    )


class StreamSourceConfig(_SourceCommon):
    """A network stream (RTSP, HTTP MJPEG, UDP, RTMP) through OpenCV's FFmpeg backend."""

    type: Literal["stream"]
    url: str = Field(
        pattern=r"^(rtsps?|https?|udp|rtmp|rtp)://\S+$", description="stream address"
    )
    open_timeout_s: float = Field(10.0, gt=0, le=600, description="give up opening after this")
    read_timeout_s: float = Field(
        5.0, gt=0, le=600, description="a read that waits longer counts as a lost stream"
    )


# The pixel formats edge.line.sources.genicam turns into RGB (a test checks the two lists agree).
GenicamPixelFormat = Literal[
    "Mono8", "Mono10", "Mono12", "Mono14", "Mono16", "RGB8", "BGR8", "RGBa8", "BGRa8",
    "BayerRG8", "BayerGR8", "BayerGB8", "BayerBG8",
]


class GenicamSourceConfig(_SourceCommon):
    """A GenICam camera (GigE Vision, USB3 Vision, ...) through its vendor's GenTL producer, read
    with harvesters (the optional extra ``genicam``). Paced by the camera itself. The producer file
    and the camera are looked for when the source opens, not when the config loads."""

    type: Literal["genicam"]
    cti: Path = Field(
        description="the GenTL producer (.cti file) from the camera vendor's SDK or mvGenTL"
    )
    serial_number: str | None = Field(
        None, min_length=1, description="pick the camera with this serial number"
    )
    model: str | None = Field(None, min_length=1, description="pick the camera of this model")
    device_index: int | None = Field(
        None, ge=0, description="pick the n-th camera the producer lists (None: the first, "
        "unless serial_number or model is given)",
    )
    fps: float | None = Field(
        None, gt=0, le=1000, description="AcquisitionFrameRate asked of the camera; None: its own"
    )
    pixel_format: GenicamPixelFormat | None = Field(
        None, description="PixelFormat asked of the camera; None: the one it is set to"
    )
    features: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="other GenICam features set when the camera opens, by "
        "node name, e.g. {ExposureTime: 5000, Gain: 2.0}",
    )
    timeout_s: float = Field(
        5.0, gt=0, le=600, description="a buffer fetch that waits longer counts as a lost camera"
    )

    @model_validator(mode="after")
    def _one_way_to_pick_the_camera(self) -> GenicamSourceConfig:
        if self.device_index is not None and (self.serial_number or self.model):
            raise ValueError("give device_index or serial_number/model, not both")
        return self


SourceConfig = Annotated[
    Union[
        SimulatedSourceConfig,
        FolderSourceConfig,
        VideoSourceConfig,
        CameraSourceConfig,
        StreamSourceConfig,
        GenicamSourceConfig,
    ],
    Field(discriminator="type"),
]
