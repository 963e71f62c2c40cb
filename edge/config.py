"""The edge service's configuration: one strict pydantic tree, loaded from YAML + dotted overrides.

A typo fails at load time naming the key (extra="forbid"); every field says what it is and its unit.
Loading does no I/O beyond reading the file; the model dir is resolved when the model loads
(qc.inference.resolve_model_dir: the dir itself, its CURRENT version, or its highest version).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from edge.line.outputs.config import OutputsConfig
from edge.line.triggers.config import FrameTriggerConfig, TriggerConfig
from qc.decision import VerdictRules
from qc.overrides import (
    ConfigError,
    apply_overrides,
    format_validation_error,
    load_yaml_mapping,
    parse_override,
)
from qc.strict import Strict


class StationConfig(Strict):
    id: str = Field("station-1", min_length=1, description="name of this camera station")
    line: str = Field("line-1", min_length=1, description="production line the station sits on")
    px_per_mm: float | None = Field(
        None, gt=0, description="camera scale; when set, defects are also measured in mm / mm²"
    )
    fabric_width_mm: float | None = Field(
        None, gt=0, description="width of the fabric under the camera, for the 4-point system "
        "(a lot may give its own); the fabric runs top to bottom in the image",
    )


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


DEFAULT_CAMERA_ID = "cam-1"


class CameraConfig(Strict):
    """One camera of the station: its frames, and how they become units. Each runs its own pipeline."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="camera name, unique on the station; "
        "units, /healthz and /metrics carry it",
    )
    source: SourceConfig = Field(description="where this camera's frames come from")
    trigger: TriggerConfig = Field(
        default_factory=FrameTriggerConfig, description="how its frames become units (mode: "
        "frame | interval | presence | external)",
    )


class ModelConfig(Strict):
    dir: Path = Field(
        Path("models/default"),
        description="a model dir (model.onnx + model.json), or a folder of version subfolders",
    )


class RetentionConfig(Strict):
    """How long unit images are kept. Rows (verdicts, reviews) are never deleted (edge.storage.retention)."""

    max_age_days: float | None = Field(
        None, gt=0, description="remove the images of whole days once all their units are older "
        "than this many days; None: keep",
    )
    max_bytes: int | None = Field(
        None, gt=0, description="keep the unit images under this many bytes, removing the oldest "
        "units first; None: no limit",
    )
    check_every_s: float = Field(
        300.0, gt=0, le=86400, description="how often the limits are checked (a background thread)"
    )


class StorageConfig(Strict):
    data_dir: Path = Field(Path("var"), description="where the database and unit images live")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; None means sqlite:///<data_dir>/qc.db"
    )
    sqlite_busy_timeout_s: float = Field(
        15.0, gt=0, le=600, description="SQLite: how long a write waits for another writer's lock "
        "before the unit goes to the local spool (data_dir/spool)",
    )
    postgres_connect_timeout_s: float = Field(
        5.0, ge=1, le=600, description="PostgreSQL: how long a connect may take before the "
        "database counts as unreachable and units go to the local spool",
    )
    spool_retry_s: float = Field(
        1.0, gt=0, le=3600, description="while units wait in the spool, how often the database "
        "is tried again",
    )
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="image retention by age and by size"
    )

    def resolved_database_url(self) -> str:
        return self.database_url or default_database_url(self.data_dir)


def default_database_url(data_dir: Path) -> str:
    """The station database when storage.database_url is not set: SQLite in the data folder."""
    return f"sqlite:///{data_dir / 'qc.db'}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only takes connections from this machine (127.0.0.0/8, ::1, localhost).
    Any other name or address, 0.0.0.0 and :: included, may be reached from the network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything, so not loopback
        return False


class ApiConfig(Strict):
    host: str = Field("127.0.0.1", description="interface the REST API listens on")
    port: int = Field(8000, ge=0, le=65535, description="TCP port of the REST API")
    require_keys: bool | Literal["auto"] = Field(
        "auto", description="read routes (units, images, CSV, PDF, summary, lots, model, /metrics) "
        "need a viewer key too; mutating routes always need one. auto: yes unless `host` is a "
        "loopback address; false: reads are open to anyone who can reach the port",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed to call the API from a browser; empty: CORS off"
    )
    max_upload_mb: float = Field(20.0, gt=0, le=1024, description="largest image POST /inspect takes")
    max_upload_megapixels: float = Field(
        24.0, gt=0, le=1000,
        description="largest image POST /inspect decodes, in millions of pixels (read from the header "
        "first: a small file can inflate to gigabytes); an inspection holds about 18 bytes a pixel",
    )
    max_concurrent_inspections: int = Field(
        1, ge=1, le=64,
        description="uploads POST /inspect works on at once; beyond, 503 with Retry-After (each "
        "takes CPU from the line and memory in proportion to its pixels)",
    )

    def reads_need_key(self) -> bool:
        if self.require_keys == "auto":  # off the loopback, the safe choice is keys
            return not is_loopback(self.host)
        return self.require_keys


HHMM = r"^([01][0-9]|2[0-3]):(00|15|30|45)$"


class ShiftConfig(Strict):
    name: str = Field(min_length=1, max_length=64)
    start: str = Field(pattern=HHMM, description="local start time HH:MM (quarter hours)")
    end: str = Field(pattern=HHMM, description="local end time HH:MM; before start: past midnight")

    def minutes(self) -> tuple[int, int]:
        return tuple(int(t[:2]) * 60 + int(t[3:]) for t in (self.start, self.end))  # type: ignore[return-value]

    def contains(self, minute_of_day: int) -> bool:
        start, end = self.minutes()
        if start < end:
            return start <= minute_of_day < end
        return minute_of_day >= start or minute_of_day < end


class AqlConfig(Strict):
    critical: float = Field(0.0, ge=0, description="AQL in % for critical defects (0: none accepted)")
    major: float = Field(2.5, ge=0, description="AQL in % for major defects")
    minor: float = Field(4.0, ge=0, description="AQL in % for minor defects")


def _default_shifts() -> list[ShiftConfig]:
    return [
        ShiftConfig(name="A", start="06:00", end="14:00"),
        ShiftConfig(name="B", start="14:00", end="22:00"),
        ShiftConfig(name="C", start="22:00", end="06:00"),
    ]


class ReportsConfig(Strict):
    aql: AqlConfig = Field(default_factory=AqlConfig)
    inspection_level: Literal["I", "II", "III", "S-1", "S-2", "S-3", "S-4"] = Field(
        "II", description="ISO 2859-1 inspection level"
    )
    fourpoint_limit: float = Field(
        40.0, gt=0, description="4-point system: most points per 100 square yards that pass"
    )
    shifts: list[ShiftConfig] = Field(default_factory=_default_shifts, min_length=1)
    timezone: str | None = Field(
        None, description="IANA zone the shifts are in (e.g. Asia/Dhaka); None: the machine's"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _shifts_cover_the_day_once(self) -> ReportsConfig:
        for minute in range(0, 24 * 60, 15):
            owners = [s.name for s in self.shifts if s.contains(minute)]
            if len(owners) != 1:
                at = f"{minute // 60:02d}:{minute % 60:02d}"
                raise ValueError(
                    f"shifts must cover the day once; at {at} the shift is {owners or 'none'}"
                )
        return self


class PipelineConfig(Strict):
    queue_size: int = Field(8, ge=1, le=10_000, description="frames waiting for inference")
    inference_threads: int = Field(2, ge=1, le=256, description="onnxruntime intra-op threads")
    writer_threads: int = Field(
        1, ge=1, le=16, description="threads rendering and storing decided units; >1 overlaps "
        "slow-disk waits but stores units out of verdict order"
    )


class EdgeConfig(Strict):
    station: StationConfig = Field(default_factory=StationConfig)
    rules: VerdictRules = Field(
        default_factory=VerdictRules, description="what the station ignores and how small a defect may be"
    )
    source: SourceConfig = Field(default_factory=SimulatedSourceConfig)
    trigger: TriggerConfig = Field(
        default_factory=FrameTriggerConfig,
        description="how the frames of `source` become units (a station with one camera)",
    )
    cameras: list[CameraConfig] | None = Field(
        None, min_length=1, description="several cameras, one pipeline each, in place of "
        "`source` and `trigger` (which make one camera named cam-1)",
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    outputs: OutputsConfig = Field(
        default_factory=OutputsConfig, description="MQTT, webhooks and reject signals; all off by default"
    )
    # How load_config made each relative path absolute, by dotted key: errors about a path the
    # user did not write in full (a model dir holds no model) say which folder it was taken from.
    _relative_paths: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _one_way_to_name_cameras(self) -> EdgeConfig:
        if self.cameras is None:
            return self
        both = sorted({"source", "trigger"} & self.model_fields_set)
        if both:
            raise ValueError(f"give either cameras or {' and '.join(both)}, not both")
        ids = [c.id for c in self.cameras]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"camera ids must be unique; repeated: {', '.join(repeated)}")
        return self

    def how_resolved(self, key: str) -> str | None:
        """How the relative path at ``key`` (e.g. "model.dir") was made absolute; None if it was
        written in full or the config was not loaded from a file or overrides."""
        return self._relative_paths.get(key)

    def camera_list(self) -> list[CameraConfig]:
        """The station's cameras: ``cameras``, or ``source`` + ``trigger`` as one named cam-1."""
        if self.cameras is not None:
            return list(self.cameras)
        return [CameraConfig(id=DEFAULT_CAMERA_ID, source=self.source, trigger=self.trigger)]


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> EdgeConfig:
    """Read YAML (or nothing), apply ``key=value`` overrides, validate, make paths absolute."""
    data = load_yaml_mapping(path) if path is not None else {}
    merged = apply_overrides(data, overrides)
    source = str(path) if path is not None else "edge config"
    if overrides:
        source += " with overrides " + " ".join(overrides)
    try:
        config = EdgeConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from exc
    config_file = Path(path).absolute() if path is not None else None
    return resolve_paths(config, config_file, data, overrides)


def resolve_paths(
    config: EdgeConfig,
    config_file: Path | None,
    file_data: Mapping[str, Any] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> EdgeConfig:
    """Make every relative path of ``config`` absolute, against the folder of where it was written.

    A path from the config file, or a default the file leaves as it is, is relative to the file's
    folder, so a station finds its model and data wherever it is started from (as docker compose
    and most tools that read a config file do); a path given on the command line is relative to
    the working directory, as any shell argument is. Without a config file, everything is.
    ``config.how_resolved(key)`` says afterwards which rule each relative path followed.
    """
    cwd = Path.cwd()
    from_command_line = [tuple(parse_override(text)[0]) for text in overrides]
    notes: dict[str, str] = {}

    def absolute(location: tuple[str | int, ...], value: Path) -> Path:
        if value.is_absolute():
            return value
        key, as_written = ".".join(str(part) for part in location), repr(str(value))
        if any(location[: len(keys)] == keys for keys in from_command_line):
            base = cwd
            why = f"{key} {as_written} came from the command line: resolved against the working "
            why += f"directory {cwd}"
        elif config_file is None:
            base = cwd
            why = f"{key} {as_written} was resolved against the working directory {cwd} "
            why += "(no config file)"
        else:
            base = config_file.parent
            what = (f"{key} {as_written} in {config_file}" if _holds(file_data or {}, location)
                    else f"{key} was not set in {config_file}: its default {as_written}")
            why = f"{what} was resolved against that file's folder {base}"
        notes[key] = why
        return Path(os.path.normpath(base / value))  # ../../models/default without the ../..

    resolved = _with_absolute_paths(config, (), absolute)
    resolved._relative_paths = notes
    return resolved


def _with_absolute_paths(model: BaseModel, location: tuple[str | int, ...], absolute) -> BaseModel:
    """A copy of ``model`` with each Path field, at any depth and in lists, passed through
    ``absolute(location, path)``; walking the fields finds every path, also ones added later."""

    def converted(value, where: tuple[str | int, ...]):
        if isinstance(value, Path):
            return absolute(where, value)
        if isinstance(value, BaseModel):
            return _with_absolute_paths(value, where, absolute)
        if isinstance(value, list):
            items = [converted(item, (*where, i)) for i, item in enumerate(value)]
            return value if all(a is b for a, b in zip(items, value)) else items
        return value

    update = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        new = converted(value, (*location, name))
        if new is not value:
            update[name] = new
    return model.model_copy(update=update) if update else model


def _holds(data: Mapping[str, Any], location: tuple[str | int, ...]) -> bool:
    """Whether the raw YAML mapping sets the value at ``location`` (keys and list indexes)."""
    node: Any = data
    for part in location:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
        elif isinstance(part, str) and isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return False
    return True
