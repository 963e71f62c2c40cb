from pathlib import Path

import pytest

from edge.config import EdgeConfig, load_config
from edge.line.sources.config import SimulatedSourceConfig
from qc.overrides import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "configs" / "edge" / "default.yaml"


def test_default_yaml_loads_and_matches_model_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = load_config(DEFAULT)
    assert config.station.id == "station-1"
    assert isinstance(config.source, SimulatedSourceConfig)
    assert config.source.size_px == (480, 640)
    assert config.api.port == 8000
    # Its relative paths are written against its own folder (configs/edge/): whatever folder the
    # station starts in, they are the repository's models/default and var/, as for `make run`.
    assert config.storage.data_dir == REPO / "var"
    assert config.model.dir == REPO / "models" / "default"
    assert config.storage.resolved_database_url() == f"sqlite:///{REPO / 'var' / 'qc.db'}"
    bare = EdgeConfig()
    assert bare.model_dump(exclude={"storage", "model"}) == config.model_dump(
        exclude={"storage", "model"}
    )


def test_overrides_are_applied_and_validated(tmp_path):
    config = load_config(DEFAULT, ["api.port=8001", f"storage.data_dir={tmp_path}", "source.fps=10"])
    assert config.api.port == 8001
    assert config.storage.data_dir == tmp_path
    assert config.source.fps == 10.0


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"api\.prot: unknown key"):
        load_config(DEFAULT, ["api.prot=8001"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("source:\n  type: simulated\n  fsp: 3\n")
    with pytest.raises(ConfigError, match=r"source\.simulated\.fsp: unknown key") as err:
        load_config(bad)
    assert str(bad) in str(err.value)


@pytest.mark.parametrize(
    "override",
    ["api.port=eighty", "api.port=70000", "source.fps=0", "source.defect_probability=1.5",
     "source.type=camera", "pipeline.queue_size=0"],
)
def test_bad_values_fail(override):
    key = override.split("=")[0].split(".")[0]
    with pytest.raises(ConfigError, match=key):
        load_config(DEFAULT, [override])


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(DEFAULT, ["api.port"])
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_verdict_rules_are_configurable_and_strict():
    config = load_config(DEFAULT, ["rules.ignore_margin_px=12", "rules.ignore_zones=[[0, 0, 10, 20]]"])
    assert config.rules.ignore_margin_px == 12 and config.rules.ignore_zones == [(0, 0, 10, 20)]
    with pytest.raises(ConfigError, match="rules.ignore_margn_px: unknown key"):
        load_config(DEFAULT, ["rules.ignore_margn_px=3"])


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "edge").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_edge_config_loads(path):
    config = load_config(path)
    expected = {"default": "simulated", "cameras": "simulated"}.get(path.stem, path.stem)
    assert config.camera_list()[0].source.type == expected


STATION_YAML = """\
model: {dir: models/line-2}
storage: {data_dir: data}
cameras:
  - id: top
    source: {type: folder, path: shots}
  - id: side
    source: {type: genicam, cti: sdk/producer.cti}
outputs:
  mqtt: {enabled: true, tls: {ca_file: certs/ca.pem}}
"""


def _station_elsewhere(monkeypatch, tmp_path) -> Path:
    """A config in tmp_path/etc/qc/, and a working directory that is another folder."""
    config_dir = tmp_path / "etc" / "qc"
    config_dir.mkdir(parents=True)
    (config_dir / "station.yaml").write_text(STATION_YAML)
    elsewhere = tmp_path / "home" / "op"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    return config_dir


def test_relative_paths_in_a_config_file_resolve_against_its_folder(monkeypatch, tmp_path):
    config_dir = _station_elsewhere(monkeypatch, tmp_path)
    config = load_config(config_dir / "station.yaml")
    assert config.model.dir == config_dir / "models" / "line-2"
    assert config.storage.data_dir == config_dir / "data"
    top, side = config.camera_list()
    assert top.source.path == config_dir / "shots"
    assert side.source.cti == config_dir / "sdk" / "producer.cti"
    assert config.outputs.mqtt.tls.ca_file == config_dir / "certs" / "ca.pem"
    # A path the file leaves out is the station's too: its default, under the config's folder.
    (config_dir / "bare.yaml").write_text("station: {id: s2}\n")
    bare = load_config(config_dir / "bare.yaml")
    assert bare.model.dir == config_dir / "models" / "default"
    assert bare.storage.data_dir == config_dir / "var"
    # The same file named by a relative path from another folder gives the same station.
    monkeypatch.chdir(tmp_path / "etc")
    assert load_config(Path("qc") / "station.yaml").model.dir == config_dir / "models" / "line-2"


def test_command_line_paths_resolve_against_the_working_directory(monkeypatch, tmp_path):
    config_dir = _station_elsewhere(monkeypatch, tmp_path)
    config = load_config(
        config_dir / "station.yaml",
        ["storage.data_dir=var", "cameras=[{id: top, source: {type: folder, path: shots}}]"],
    )
    assert config.storage.data_dir == Path.cwd() / "var"
    assert config.camera_list()[0].source.path == Path.cwd() / "shots"
    assert config.model.dir == config_dir / "models" / "line-2"  # not overridden: the file's folder
    # No config file: every relative path, written or default, is the working directory's.
    alone = load_config(None, ["model.dir=m"])
    assert alone.model.dir == Path.cwd() / "m" and alone.storage.data_dir == Path.cwd() / "var"


def test_the_config_says_how_each_relative_path_was_resolved(monkeypatch, tmp_path):
    config_dir = _station_elsewhere(monkeypatch, tmp_path)
    config = load_config(config_dir / "station.yaml", ["storage.data_dir=var"])
    note = config.how_resolved("model.dir")
    assert "'models/line-2'" in note and str(config_dir / "station.yaml") in note
    assert f"folder {config_dir}" in note
    assert "command line" in config.how_resolved("storage.data_dir")
    assert str(Path.cwd()) in config.how_resolved("storage.data_dir")
    (config_dir / "bare.yaml").write_text("station: {id: s2}\n")
    note = load_config(config_dir / "bare.yaml").how_resolved("model.dir")
    assert "not set" in note and "'models/default'" in note and str(config_dir) in note
    absolute = load_config(config_dir / "station.yaml", [f"model.dir={tmp_path}"])
    assert absolute.how_resolved("model.dir") is None  # nothing to explain: written in full


def test_the_shipped_severity_table_names_every_synthetic_and_common_aitex_type():
    from qc.data.readers import AITEX_DEFECT_NAMES, slug
    from qc.synth.defects import DEFECTS  # fabric and seam defects alike

    table = load_config(DEFAULT).severity
    assert len(DEFECTS) == 17
    assert set(DEFECTS) <= set(table.types)
    aitex = {slug(name) for name in AITEX_DEFECT_NAMES.values()}
    assert aitex <= set(table.types)
    assert table.rule("defect").base == "major"  # a model without types: today's rule
    assert table.rule("hole").base == "major"
    slub = table.rule("slub")
    assert (slub.grade(4.0, None), slub.grade(5.0, None), slub.grade(None, None)) == ("minor", "major", "minor")


def test_a_severity_type_that_is_not_an_identifier_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("severity:\n  types:\n    broken-end: {base: major}\n")
    with pytest.raises(ConfigError, match=r"severity\.types.*'broken-end' is not a valid identifier") as err:
        load_config(bad)
    assert str(bad) in str(err.value)


def test_a_station_may_replace_the_severity_table(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("severity:\n  default: {base: minor}\n  types:\n    hole: {base: critical}\n")
    table = load_config(own).severity
    assert set(table.types) == {"hole"}
    assert (table.rule("hole").base, table.rule("slub").base, table.rule("defect").base) == (
        "critical", "minor", "minor",
    )
