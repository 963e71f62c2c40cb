import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from qc.overrides import ConfigError, apply_overrides, format_validation_error, load_yaml_mapping


def test_dotted_overrides_are_parsed_as_yaml_values():
    data = {"api": {"port": 8000, "host": "127.0.0.1"}}
    out = apply_overrides(data, ["api.port=8001", "storage.data_dir=/tmp/x", "flag=true"])
    assert out == {
        "api": {"port": 8001, "host": "127.0.0.1"},
        "storage": {"data_dir": "/tmp/x"},
        "flag": True,
    }
    assert data["api"]["port"] == 8000  # the input is not mutated


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1", "api.port.x=1"])
def test_malformed_overrides_are_refused(bad):
    with pytest.raises(ConfigError):
        apply_overrides({"api": {"port": 1}}, [bad])


def test_yaml_file_errors_name_the_file(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml"):
        load_yaml_mapping(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_yaml_mapping(tmp_path / "missing.yaml")
    assert load_yaml_mapping(_write(tmp_path / "empty.yaml", "")) == {}


def _write(path, text):
    path.write_text(text)
    return path


def test_validation_errors_name_unknown_keys():
    class Api(BaseModel):
        model_config = ConfigDict(extra="forbid")
        port: int

    with pytest.raises(ValidationError) as info:
        Api.model_validate({"port": 1, "prot": 2})
    message = format_validation_error("edge.yaml", info.value)
    assert "prot: unknown key" in message and "edge.yaml" in message
