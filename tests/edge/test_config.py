from pathlib import Path

import pytest

from edge.config import EdgeConfig, SimulatedSourceConfig, load_config
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
    # Relative paths resolve against the working directory.
    assert config.storage.data_dir == tmp_path / "var"
    assert config.model.dir == tmp_path / "models" / "default"
    assert config.storage.resolved_database_url() == f"sqlite:///{tmp_path / 'var' / 'qc.db'}"
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
