"""Fixtures for training tests: a tiny textured dataset on disk, a tiny config, one tiny trained run
and its export (session-scoped: trained once, a few steps on 32 px crops, never a real model)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

TINY_CONFIG = """
seed: 3
data: {crop_px: 32, val_fraction: 0.25, min_val_images: 2, anomaly_probability: 0.5}
net: {base_channels: 4, channel_multipliers: [1, 2, 3], score_pool_px: 3}
optim: {batch_size: 4, steps: 4, time_budget_s: 60, lr: 0.003, log_every_s: 0.01}
export: {tile_px: 64, overlap_px: 16, opset: 18}
"""


def striped_fabric(rng: np.random.Generator, height: int = 64, width: int = 80) -> np.ndarray:
    """A woven-looking texture: two crossing stripe patterns, a random colour, sensor noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(4, 8)
    weave = 0.5 + 0.25 * np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)
    colour = rng.uniform(60, 200, size=3)
    image = weave[:, :, None] * colour * 1.6 + rng.normal(0, 4, size=(height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def fires_on_bright():
    """A stand-in network (a torch module) whose heatmap is the pixel brightness: it fires exactly
    where an image is bright, so a test knows where its hottest spot is."""
    import torch

    from qc.contract import ModelOutputs

    class FiresOnBright(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> ModelOutputs:
            heat = x.mean(dim=1, keepdim=True) + self.anchor
            return ModelOutputs(heatmap=heat, score=heat.amax(dim=(1, 2, 3)))

    return FiresOnBright()


def write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def write_tiny_dataset(root: Path, *, n_good: int = 8, seed: int = 0) -> Path:
    """MVTec layout; test/ holds only files that would break training if it ever read them."""
    rng = np.random.default_rng(seed)
    for i in range(n_good):
        write_png(root / "train" / "good" / f"{i:03d}.png", striped_fabric(rng))
    for folder in ("test/good", "test/hole", "ground_truth/hole"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "000.png").write_bytes(b"not a png: training must never open test/")
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "fabric")


@pytest.fixture(scope="session")
def tiny_config_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("configs") / "tiny.yaml"
    path.write_text(TINY_CONFIG, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_dataset, tiny_config_path) -> Path:
    from training.commands import run_train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return run_train(tiny_config_path, tiny_dataset, out, [], command="qc train (tests)")


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_run) -> Path:
    from training.commands import run_export

    out = tmp_path_factory.mktemp("models") / "tiny-fabric" / "0.0.1"
    return run_export(tiny_run, out, name=None, version=None, command="qc export (tests)")


def train_two_steps_checking_the_backbone_stays_frozen(net) -> None:
    """Two AdamW steps on random images; the frozen backbone stays in eval mode (its batch norms keep
    ImageNet's statistics) and its state, running statistics included, is bit-identical after."""
    import torch

    frozen = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    net.train()
    assert not net.backbone.training
    for _ in range(2):
        loss = net.logits(torch.rand(2, 3, 64, 64)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for key, value in net.backbone.state_dict().items():
        assert torch.equal(value, frozen[key]), key
