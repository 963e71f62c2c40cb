"""Calibration scores images with the network's ONNX graph on the CPU (training/onnx_scoring.py):
the maps must be the ones torch gives, for a network of every norm kind calibration meets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.config import ExportConfig, NetConfig
from training.net import DefectUNet
from training.onnx_scoring import fastest_tile_scorer, onnx_tile_scorer
from training.station_scoring import station_map

EXPORT = ExportConfig(tile_px=64, overlap_px=16)


@pytest.mark.parametrize("norm", ["instance", "local_instance"])
def test_the_graph_gives_torchs_station_map(norm):
    torch.manual_seed(0)
    net = DefectUNet(NetConfig(norm=norm)).eval()
    for parameter in net.parameters():
        parameter.data += 0.05 * torch.randn_like(parameter)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(90, 300, 3)).astype(np.uint8)  # tiles of both sizes, blended
    expected_map, expected_score = station_map(net, image, EXPORT)
    with onnx_tile_scorer(net, EXPORT) as scorer:
        got_map, got_score = station_map(scorer, image, EXPORT)
    assert got_map.shape == expected_map.shape
    assert np.abs(got_map - expected_map).max() < 1e-4 and abs(got_score - expected_score) < 1e-4
    assert expected_map.std() > 1e-3  # a map with something in it, not a constant both agree on


def test_a_network_on_the_cpu_is_scored_by_onnxruntime(monkeypatch):
    from training import onnx_scoring

    exported = []
    real_export = onnx_scoring.export_onnx
    monkeypatch.setattr(onnx_scoring, "export_onnx", lambda *a, **k: exported.append(a) or real_export(*a, **k))
    net = DefectUNet(NetConfig()).eval()
    with fastest_tile_scorer(net, EXPORT) as scorer:
        heat, score = scorer(np.zeros((2, 3, 64, 64), np.float32))
    assert len(exported) == 1
    assert heat.shape == (2, 64, 64) and score.shape == (2,)
