"""The edge service's configuration: one strict pydantic tree, loaded from YAML + dotted overrides.

This is the root: the station, its cameras, model and pipeline; each part's own section is defined
beside the part (edge.line.sources.config, edge.line.triggers.config, edge.line.outputs.config,
edge.line.severity_config, edge.storage.config, edge.api.config, edge.reports.config) and imported
here, where the tree is put together (the part configs' names can be imported from here too).

A typo fails at load time naming the key (extra="forbid"); every field says what it is and its unit.
Loading does no I/O beyond reading the file; the model dir is resolved when the model loads
(qc.inference.resolve_model_dir: the dir itself, its CURRENT version, or its highest version).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from edge.api.config import ApiConfig
from edge.line.outputs.config import OutputsConfig
from edge.line.severity_config import shipped_severity_table
from edge.line.sources.config import (
    SimulatedSourceConfig,
    SourceConfig,
)
from edge.line.triggers.config import FrameTriggerConfig, TriggerConfig
from edge.reports.config import ReportsConfig
from edge.storage.config import StorageConfig
from qc.decision import VerdictRules
from qc.overrides import (
    ConfigError,
    apply_overrides,
    format_validation_error,
    load_yaml_mapping,
    parse_override,
)
from qc.severity import SeverityTable
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
    severity: SeverityTable = Field(
        default_factory=shipped_severity_table,
        description="defect type -> class (critical | major | minor) and size limits in mm",
    )
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
