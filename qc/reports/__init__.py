"""QC report logic (issue 7): lot acceptance sampling and fabric points. Pure, no I/O."""

from qc.reports.aql import LotVerdict, SamplingPlan, code_letter, lot_verdict, plan
from qc.reports.fourpoint import (
    FabricDefect,
    FabricReport,
    defect_points,
    fabric_verdict,
    points_per_100_sq_yd,
)

__all__ = [
    "FabricDefect",
    "FabricReport",
    "LotVerdict",
    "SamplingPlan",
    "code_letter",
    "defect_points",
    "fabric_verdict",
    "lot_verdict",
    "plan",
    "points_per_100_sq_yd",
]
