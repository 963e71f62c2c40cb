import json
import shutil

import pytest

from qc.card import ModelRefused, load_card, verify_files, write_card


def test_card_round_trips(tiny_model_dir, tmp_path):
    card = load_card(tiny_model_dir)
    write_card(card, tmp_path)
    assert load_card(tmp_path) == card


def test_unknown_card_field_is_refused(tiny_model_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(tiny_model_dir, copy)
    data = json.loads((copy / "model.json").read_text())
    data["thresholdz"] = {}
    (copy / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelRefused, match="thresholdz"):
        load_card(copy)


def test_missing_onnx_file_is_refused(tiny_model_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "model.onnx").unlink()
    with pytest.raises(ModelRefused, match="missing"):
        verify_files(copy)


def test_unparsable_card_is_refused(tmp_path):
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelRefused, match="not readable JSON"):
        load_card(tmp_path)


def test_a_card_write_that_fails_keeps_the_old_card_whole(tiny_model_dir, tmp_path, monkeypatch):
    """``qc eval --record`` rewrites a serving model's card: a write the disk refuses half-way
    (here at the flush to disk) must leave the old card, not a truncated one, and no litter."""
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    before = (tmp_path / "m" / "model.json").read_bytes()
    card = load_card(tmp_path / "m")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_card(card.model_copy(update={"name": "renamed"}), tmp_path / "m")
    assert (tmp_path / "m" / "model.json").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(
        p.name for p in tiny_model_dir.iterdir())


@pytest.mark.parametrize("multiple, station_tile, where", [(48, 64, "input.tile_px"), (32, 80, "tiling.tile_px")])
def test_a_card_whose_tiles_the_graph_would_refuse_is_refused(tiny_model_dir, tmp_path, multiple, station_tile, where):
    copy = tmp_path / "m"
    shutil.copytree(tiny_model_dir, copy)
    data = json.loads((copy / "model.json").read_text())
    data["input"]["size_multiple_px"] = multiple  # the trained tile is 64 px
    data["tiling"]["tile_px"] = station_tile
    (copy / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelRefused, match=f"{where} {station_tile if where == 'tiling.tile_px' else 64} is not a multiple"):
        load_card(copy)
