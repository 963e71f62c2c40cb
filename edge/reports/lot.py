"""A lot's report: counts, defects by class and type, ISO 2859-1 acceptance, ASTM D5430 points.

The station inspects every unit, so the ISO 2859-1 sample is the first n units of the lot in
capture order, n being the plan's sample size for the lot size and inspection level. A unit that
ends failed counts as one defect, of its class (edge.units.unit_severity: the class its review
gave, else the worst the station graded among its defects, else 'major').

The 4-point system needs the camera scale (station.px_per_mm) and the fabric width (the lot's,
else station.fabric_width_mm); the fabric is taken to run top to bottom in each unit's image, so
the length inspected is the sum of the units' heights. Without them the report says what is
missing instead of giving numbers.

The standards' tables live in qc.reports (aql.lot_verdict, fourpoint.fabric_verdict); this module
only gathers their inputs from the station database.
"""

from __future__ import annotations

from typing import Any

from edge.config import EdgeConfig
from edge.reports.summary import count_graded_types, pareto
from edge.storage import lot_queries
from edge.storage.store import UnitStore
from edge.units import Lot
from qc.reports import aql
from qc.reports.fourpoint import FabricDefect, fabric_verdict
from qc.severity import SEVERITIES


def unit_counts(store: UnitStore, lot_id: str) -> dict[str, Any]:
    rows = lot_queries.verdict_counts(store.engine, lot_id)
    type_rows = lot_queries.failed_defect_types(store.engine, lot_id)
    by_verdict = {verdict: n for verdict, n, _ in rows}
    return {
        "inspected": sum(by_verdict.values()),
        "passed": by_verdict.get("pass", 0),
        "failed": by_verdict.get("fail", 0),
        "needs_review": by_verdict.get("needs_review", 0),
        "reviewed": sum(n for _, _, n in rows),
        "defects_by_type": pareto(count_graded_types(type_rows)),
    }


def defects_by_class(store: UnitStore, lot_id: str, *, first: int | None = None) -> dict[str, int]:
    """Failed units per defect class, over the lot or over its ``first`` units; each unit of its
    class as edge.units.unit_severity gives it (stored in the units' ``severity`` column)."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for verdict, severity in lot_queries.verdicts_and_severities(store.engine, lot_id, first=first):
        if verdict == "fail":
            counts[severity] += 1
    return counts


def aql_section(store: UnitStore, lot: Lot, config: EdgeConfig, inspected: int) -> dict[str, Any]:
    reports = config.reports
    aqls = reports.aql.model_dump()
    level = reports.inspection_level
    sample_size = aql.lot_verdict(lot.lot_size, {}, aqls, level).sample_size
    found = defects_by_class(store, str(lot.id), first=sample_size)
    result = aql.lot_verdict(lot.lot_size, found, aqls, level)
    section: dict[str, Any] = {
        "inspection_level": result.level,
        "sample_size": sample_size,
        "sampled": min(sample_size, inspected),
        "defects_in_sample": found,
        "classes": [c.model_dump(mode="json") for c in result.classes],
    }
    rejected_early = any(c.found >= c.plan.reject for c in result.classes)
    if inspected < sample_size and not rejected_early:
        # A class already at its rejection number rejects the lot however the sample ends.
        section["verdict"] = "incomplete"
        section["reason"] = f"{inspected} of the {sample_size} sample units inspected so far"
    else:
        section["verdict"] = "accept" if result.accepted else "reject"
    return section


def fabric_defects(store: UnitStore, lot_id: str, px_per_mm: float) -> tuple[list, float]:
    """The lot's defects along the fabric (fail units only) and the length inspected, in mm."""
    defects, offset_mm = [], 0.0
    for verdict, unit_defects, reviewed_type, height_px in lot_queries.units_along_the_fabric(
        store.engine, lot_id
    ):
        height_mm = (height_px or 0) / px_per_mm
        if verdict == "fail":
            # An operator's fail with no region from the model: a point defect mid-unit.
            regions = unit_defects or [{"box": [0, int((height_px or 0) / 2), 0, 0]}]
            for d in regions:
                x, y, w, h = d["box"]
                defect_type = reviewed_type or d.get("type", "defect")
                defects.append(
                    FabricDefect(
                        length_mm=d.get("length_mm") or max(w, h) / px_per_mm,
                        position_mm=offset_mm + min((y + h / 2) / px_per_mm, height_mm),
                        is_hole=defect_type == "hole",
                    )
                )
        offset_mm += height_mm
    return defects, offset_mm


def fourpoint_section(store: UnitStore, lot: Lot, config: EdgeConfig) -> dict[str, Any]:
    px_per_mm = config.station.px_per_mm
    width_mm = lot.fabric_width_mm or config.station.fabric_width_mm
    missing = [
        what
        for what, value in (("station.px_per_mm", px_per_mm), ("the fabric width", width_mm))
        if value is None
    ]
    if missing:
        return {
            "available": False,
            "reason": f"the 4-point system needs {' and '.join(missing)} (give the lot a "
            "fabric_width_mm or set station.fabric_width_mm; set station.px_per_mm)",
        }
    defects, length_mm = fabric_defects(store, str(lot.id), px_per_mm)
    if length_mm <= 0:
        return {"available": False, "reason": "no fabric of this lot inspected yet"}
    result = fabric_verdict(
        defects, inspected_length_mm=length_mm, width_mm=width_mm, limit=config.reports.fourpoint_limit
    )
    return {
        "available": True,
        "defects": len(defects),
        "total_points": result.total_points,
        "inspected_length_yd": result.inspected_length_yd,
        "width_in": result.width_in,
        "points_per_100_sq_yd": result.points_per_100_sq_yd,
        "limit": result.limit,
        "yards": [y.model_dump(mode="json") for y in result.yards],
        "verdict": "pass" if result.passed else "fail",
    }


def lot_verdict(report: dict[str, Any]) -> str:
    """The lot's overall verdict: reject when any method rejects, else accept once AQL accepts."""
    aql_verdict = report["aql"]["verdict"]
    four = report["fourpoint"]
    if aql_verdict == "reject" or (four.get("available") and four["verdict"] == "fail"):
        return "reject"
    return aql_verdict  # accept | incomplete


def lot_report(store: UnitStore, lot: Lot, config: EdgeConfig) -> dict[str, Any]:
    counts = unit_counts(store, str(lot.id))
    report = {
        "lot": lot.model_dump(),
        "units": {k: v for k, v in counts.items() if k != "defects_by_type"},
        "defects_by_class": defects_by_class(store, str(lot.id)),
        "defects_by_type": counts["defects_by_type"],
        "aql": aql_section(store, lot, config, counts["inspected"]),
        "fourpoint": fourpoint_section(store, lot, config),
    }
    return {**report, "verdict": lot_verdict(report)}
