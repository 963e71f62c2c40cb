"""Synthetic fabric tiles and garment panels with exact defect masks (numpy + OpenCV only).

Used to write a training dataset (`qc synth`), to feed the edge station's simulated line camera,
and in tests. New fabrics and defects plug in with @register_fabric / @register_defect.
"""

from qc.synth.dataset import write_mvtec_dataset
from qc.synth.defects import BLUR_MARGIN_PX, DEFECTS, apply_defect, register_defect
from qc.synth.fabrics import FABRICS, register_fabric, render_fabric
from qc.synth.generator import SynthSample, generate_sample
from qc.synth.panels import generate_panel, render_panel

__all__ = [
    "BLUR_MARGIN_PX",
    "DEFECTS",
    "FABRICS",
    "SynthSample",
    "apply_defect",
    "generate_panel",
    "generate_sample",
    "register_defect",
    "register_fabric",
    "render_fabric",
    "render_panel",
    "write_mvtec_dataset",
]
