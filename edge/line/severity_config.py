"""The ``severity:`` section: the station's table of defect classes (qc.severity.SeverityTable).

The pipeline grades each failed unit's defects with it (edge.line.pipeline); a lot's AQL counts
each failed unit under its worst class. The shipped table names the synthetic generator's types
(qc.synth.defects, qc.synth.seam_defects) and the common AITEX ones (qc.data.readers), as a
starting point a QC manager edits per station or per buyer. Critical is left to safety defects
(needles, sharp objects) and to seams that open over a length; nothing else starts critical.
"""

from __future__ import annotations

from qc.severity import SeverityRule, SeverityTable

_MAJOR = {"base": "major"}


def _minor_until(mm: float) -> dict:
    return {"base": "minor", "major_from_mm": mm}


SHIPPED_RULES: dict[str, dict] = {
    # Woven-fabric faults (the synthetic generator's, and AITEX's names for the same faults).
    "hole": _MAJOR,  # a hole of any size: the garment cannot be sold as first quality
    "cut_selvage": _MAJOR,
    "broken_end": _MAJOR,  # a missing warp yarn runs the length of the fabric
    "broken_pick": _MAJOR,
    "broken_yarn": _MAJOR,
    "missing_yarn": _MAJOR,
    "weft_crack": _MAJOR,
    "colour_band": _MAJOR,  # shade variation across a panel shows at any size
    "slub": _minor_until(5),
    "knot": _minor_until(5),
    "knots": _minor_until(5),
    "nep": _minor_until(5),
    "fuzzyball": _minor_until(5),
    "warp_ball": _minor_until(5),
    "float": _minor_until(5),
    "needle_mark": _minor_until(3),
    "foreign_fiber": _minor_until(10),
    "contamination": _minor_until(10),
    "stain": _minor_until(10),
    "weft_curling": _minor_until(20),
    "crease": _minor_until(50),
    # Seam faults.
    "skipped_stitch": _MAJOR,
    "broken_stitch": _MAJOR,
    "open_seam": {"base": "major", "critical_from_mm": 25},  # the garment comes apart
    "puckering": _minor_until(50),
    "crooked_seam": _minor_until(50),
}


def shipped_severity_table() -> SeverityTable:
    """The table a station grades with unless its config gives one (configs/edge/default.yaml
    shows it in full). Any type it does not name is major, as every failed unit was before."""
    return SeverityTable(
        default=SeverityRule(base="major"),
        types={name: SeverityRule.model_validate(rule) for name, rule in SHIPPED_RULES.items()},
    )
