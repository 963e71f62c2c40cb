"""The station sees what training saw: same preprocessing, same tiling, same heatmap."""

import numpy as np
import pytest

from qc.inference import Inferencer, to_input_tensor
from qc.self_similarity import add_unrepeated
from training.station_scoring import infer_image
from training.data import to_tensor_layout
from training.export import load_run


def test_station_preprocessing_is_the_training_transform(rng):
    tiles = rng.integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_input_tensor(tiles), to_tensor_layout(tiles))


@pytest.mark.parametrize("padded", [False, True])
def test_torch_tiled_inference_matches_the_station_on_a_large_image(tiny_run, tiny_export, rng, padded):
    run = load_run(tiny_run)
    image = rng.integers(40, 200, (150, 333, 3), dtype=np.uint8)  # several overlapping tiles
    if padded:
        image[:, :90] = 255  # a strip's white end: cleared alike, fed alike (the card's tiling)
    torch_heat, torch_score = infer_image(run.net, image, run.config.export)
    station_model = Inferencer(tiny_export)
    # The card's unrepeated-structure cue is no network: the station joins it after the map, so
    # the torch side joins it the same way (qc.self_similarity).
    card = station_model.card
    assert card.self_similarity is not None
    torch_heat, torch_score = add_unrepeated(image, torch_heat, torch_score, card.self_similarity, card.thresholds.image)
    station = station_model.infer(image)
    assert station.heatmap.shape == torch_heat.shape == (150, 333)
    np.testing.assert_allclose(station.heatmap, torch_heat, atol=1e-4)
    assert abs(station.score - torch_score) <= 1e-4


@pytest.mark.parametrize("fill_padding", [False, True])
def test_calibration_feeds_the_padding_as_the_export_config_says(rng, fill_padding):
    """training.station_scoring cuts its tiles as the station does for a card written with the same
    ``export.fill_padding``: with it, the network never sees the padding."""
    import torch

    from qc.contract import ModelOutputs
    from training.config import ExportConfig
    from training.station_scoring import station_map

    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> ModelOutputs:
            seen.append(x.clone())
            heat = torch.zeros_like(x[:, :1]) + self.anchor
            return ModelOutputs(heatmap=heat, score=heat.amax(dim=(1, 2, 3)))

    image = rng.integers(20, 160, (150, 333, 3), dtype=np.uint8)
    image[:, :120] = 255
    station_map(Recorder(), image, ExportConfig(tile_px=64, overlap_px=16, fill_padding=fill_padding))
    assert (max(float(x.max()) for x in seen) == 1.0) is not fill_padding
