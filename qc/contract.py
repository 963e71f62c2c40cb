"""The ONNX contract shared by the exporter (training/) and every reader (qc/, edge/).

One definition of the tensor names, so exporter and reader cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

INPUT_NAME = "image"
"""float32 [N, 3, H, W], RGB, values 0..1; normalisation happens inside the graph."""


class ModelOutputs(NamedTuple):
    """Outputs of every exported model, in graph order. Field names are the ONNX output names."""

    heatmap: object  # float32 [N, 1, H, W], defect probability per pixel
    score: object  # float32 [N], image score


OUTPUT_NAMES: tuple[str, ...] = ModelOutputs._fields
MODEL_FILE = "model.onnx"
CARD_FILE = "model.json"

BACKBONE_METADATA_KEY = "qc.backbone"
"""ONNX metadata naming a pretrained backbone inside the graph; it must agree with the card's."""
