import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qc.card import ModelRefused
from qc.inference import resolve_model_dir
from qc.registry import list_models, promote

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry(tiny_model_dir, tmp_path):
    for version in ("1.0.0", "1.1.0"):
        shutil.copytree(tiny_model_dir, tmp_path / "models" / "denim" / version)
    return tmp_path / "models"


def test_promote_points_stations_at_a_verified_version(registry):
    assert resolve_model_dir(registry / "denim").name == "1.1.0"  # highest without CURRENT
    promote(registry, "denim", "1.0.0")
    assert resolve_model_dir(registry / "denim").name == "1.0.0"
    assert [(m.version, m.current) for m in list_models(registry)] == [("1.0.0", True), ("1.1.0", False)]


def test_promote_refuses_a_broken_version_and_keeps_the_old_pointer(registry):
    promote(registry, "denim", "1.0.0")
    (registry / "denim" / "1.1.0" / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelRefused, match="sha256"):
        promote(registry, "denim", "1.1.0")
    assert (registry / "denim" / "CURRENT").read_text().strip() == "1.0.0"
    with pytest.raises(ModelRefused, match="no such model version"):
        promote(registry, "denim", "9.9.9")


def test_cli_models_list_verify_show(registry):
    def qc(*args):
        return subprocess.run([sys.executable, "-m", "qc", *map(str, args)], cwd=REPO, capture_output=True, text=True)

    assert "1.1.0" in qc("models", "list", "--root", registry).stdout
    assert qc("models", "verify", registry / "denim" / "1.0.0").returncode == 0
    assert '"thresholds"' in qc("models", "show", registry / "denim" / "1.0.0").stdout
    (registry / "denim" / "1.0.0" / "model.onnx").write_bytes(b"x")
    bad = qc("models", "verify", registry / "denim" / "1.0.0")
    assert bad.returncode == 2 and "sha256" in bad.stderr


def test_a_promote_the_disk_refuses_keeps_the_old_pointer(registry, monkeypatch):
    promote(registry, "denim", "1.0.0")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        promote(registry, "denim", "1.1.0")
    assert (registry / "denim" / "CURRENT").read_text().strip() == "1.0.0"
    assert not [p for p in (registry / "denim").iterdir() if p.name.startswith(".")]


def test_show_summarises_a_fixed_camera_s_column_factors(registry, capsys):
    import json

    from qc.card import PositionRecord, load_card, write_card
    from qc.cli import main

    model = registry / "denim" / "1.0.0"
    card = load_card(model)
    write_card(card.model_copy(update={"position": PositionRecord(width=4, scale=[1.0, 0.5, 0.25, 1.0], data="4 strips")}), model)
    assert main(["models", "show", str(model)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["position"]["scale"] == "4 factors, 2 below 1, smallest 0.250"
    assert shown["position"]["width"] == 4 and shown["thresholds"] == json.loads(card.model_dump_json())["thresholds"]
