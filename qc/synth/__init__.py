"""Synthetic fabric tiles and garment panels with exact defect masks (numpy + OpenCV only).

Used to write a training dataset (`qc synth`), to feed the edge station's simulated line camera,
and in tests. New fabrics and defects plug in with @register_fabric / @register_defect / @register_seam_defect.
"""

from qc.synth.dataset import write_mvtec_dataset
from qc.synth.defects import BLUR_MARGIN_PX, DEFECTS, FABRIC_DEFECTS, SEAM_DEFECTS, apply_defect, register_defect
from qc.synth.fabrics import FABRICS, register_fabric, render_fabric
from qc.synth.gallery import write_gallery
from qc.synth.generator import SynthSample, generate_sample
from qc.synth.panels import generate_panel, render_panel
from qc.synth.seam_defects import register_seam_defect
from qc.synth.seams import Seam, draw_seam, render_seam

__all__ = [
    "BLUR_MARGIN_PX",
    "DEFECTS",
    "FABRICS",
    "FABRIC_DEFECTS",
    "SEAM_DEFECTS",
    "Seam",
    "SynthSample",
    "apply_defect",
    "draw_seam",
    "generate_panel",
    "generate_sample",
    "register_defect",
    "register_fabric",
    "register_seam_defect",
    "render_fabric",
    "render_panel",
    "render_seam",
    "write_gallery",
    "write_mvtec_dataset",
]
