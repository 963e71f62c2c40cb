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

# The optional defect-type head (qc/defect_types.py): a second graph beside the detector's.
TYPES_FILE = "types.onnx"
TYPES_INPUT_NAME = "crops"
"""float32 [N, 4, crop_px, crop_px]: RGB/255 and the region hint (qc.defect_types.region_crops)."""
TYPES_GEOMETRY_NAME = "geometry"
"""float32 [N, len(geometry)]: the region's shape in the whole image (qc.defect_types.region_geometry);
only a head whose card names geometry features takes it."""
TYPES_OUTPUT_NAME = "probabilities"
"""float32 [N, len(types)]: softmax over the card's type_head.types, in that order."""

BACKBONE_METADATA_KEY = "qc.backbone"
"""ONNX metadata naming a pretrained backbone inside the graph; it must agree with the card's."""
