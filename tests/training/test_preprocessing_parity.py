"""The station sees what training saw: same preprocessing, same tiling, same heatmap."""

import numpy as np

from qc.inference import Inferencer, to_input_tensor
from training.station_scoring import infer_image
from training.data import to_tensor_layout
from training.export import load_run


def test_station_preprocessing_is_the_training_transform(rng):
    tiles = rng.integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_input_tensor(tiles), to_tensor_layout(tiles))


def test_torch_tiled_inference_matches_the_station_on_a_large_image(tiny_run, tiny_export, rng):
    run = load_run(tiny_run)
    image = rng.integers(40, 200, (150, 333, 3), dtype=np.uint8)  # several overlapping tiles
    torch_heat, torch_score = infer_image(run.net, image, run.config.export)
    station = Inferencer(tiny_export).infer(image)
    assert station.heatmap.shape == torch_heat.shape == (150, 333)
    np.testing.assert_allclose(station.heatmap, torch_heat, atol=1e-4)
    assert abs(station.score - torch_score) <= 1e-4
