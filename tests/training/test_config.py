from __future__ import annotations

from pathlib import Path

import pytest

from qc.overrides import ConfigError
from training.commands import TrainingError, run_train
from training.config import TrainConfig, load_config

DEFAULT = Path(__file__).resolve().parents[2] / "configs" / "train" / "default.yaml"


def test_default_yaml_is_valid_and_spells_out_the_defaults():
    assert load_config(DEFAULT) == TrainConfig()


def test_overrides_are_applied_and_validated():
    config = load_config(DEFAULT, ["optim.steps=7", "data.crop_px=64", "net.channel_multipliers=[1,2]"])
    assert (config.optim.steps, config.data.crop_px, config.net.channel_multipliers) == (7, 64, [1, 2])
    with pytest.raises(ConfigError, match="optim.steps"):
        load_config(DEFAULT, ["optim.steps=many"])


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"optim\.stepz: unknown key"):
        load_config(DEFAULT, ["optim.stepz=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  tile_size: 64\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data\.tile_size: unknown key"):
        load_config(bad)


def test_every_field_is_described():
    def walk(model):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, TrainConfig.__mro__[1]):
                walk(annotation)

    walk(TrainConfig)


def test_inconsistent_values_are_refused():
    with pytest.raises(ConfigError, match="overlap_px"):
        load_config(DEFAULT, ["export.overlap_px=256"])
    with pytest.raises(ConfigError, match="score_pool_px"):
        load_config(DEFAULT, ["net.score_pool_px=4"])


def test_run_train_turns_a_config_error_into_training_error(tmp_path, tiny_dataset):
    with pytest.raises(TrainingError, match="optim.stepz"):
        run_train(DEFAULT, tiny_dataset, tmp_path / "run", ["optim.stepz=1"], command="test")
    assert not (tmp_path / "run").exists()
