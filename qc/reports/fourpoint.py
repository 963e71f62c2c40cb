"""Fabric grading with the 4-point system (ASTM D5430, option A).

Each defect found on a roll earns 1 to 4 penalty points from its size; a linear yard of fabric
carries at most 4 points, whatever it holds; the roll is judged on its points per 100 square
yards against a buyer's limit (40 is the common one for first quality).

Lengths arrive in millimetres (the detector's length_mm, positions along the roll) and are
converted to inches here because the standard's brackets are in inches: 25.4 mm per inch,
36 in = 914.4 mm per yard, both exact by definition.
"""

from __future__ import annotations

import math
from collections import defaultdict

from pydantic import BaseModel, ConfigDict, Field

MM_PER_INCH = 25.4
INCHES_PER_YARD = 36
MM_PER_YARD = MM_PER_INCH * INCHES_PER_YARD  # 914.4
MAX_POINTS_PER_YARD = 4
DEFAULT_LIMIT = 40.0

# Lengths come from floating-point mm: 76.2 mm / 25.4 is 3.0000000000000004, not 3. Brackets
# are compared with this slack (in inches / yards) so an exact boundary lands where the
# standard puts it; 1e-9 in is far below any measurement.
_SLACK = 1e-9


class FabricDefect(BaseModel):
    model_config = ConfigDict(frozen=True)

    length_mm: float = Field(description="largest dimension of the defect, in any direction")
    position_mm: float = Field(description="distance from the start of the roll to the defect")
    is_hole: bool = Field(False, description="holes and openings are scored by their own scale")


class ScoredDefect(BaseModel):
    model_config = ConfigDict(frozen=True)

    defect: FabricDefect
    points: int
    yard: int  # 0-based linear yard the defect lies in


class YardPoints(BaseModel):
    model_config = ConfigDict(frozen=True)

    yard: int  # 0-based
    raw_points: int  # sum of the defects' points
    points: int  # after the 4-points-per-yard cap


class FabricReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    defects: list[ScoredDefect]
    yards: list[YardPoints]  # only the yards that hold a defect, in roll order
    total_points: int  # capped
    inspected_length_yd: float
    width_in: float
    points_per_100_sq_yd: float
    limit: float
    passed: bool  # points_per_100_sq_yd <= limit


def defect_points(length_mm: float, *, is_hole: bool = False) -> int:
    """Penalty points of one defect (ASTM D5430).

    Ordinary defects: length <= 3 in -> 1, > 3 to 6 in -> 2, > 6 to 9 in -> 3, > 9 in -> 4.
    Holes and openings: <= 1 in -> 2, > 1 in -> 4.
    Each upper bound belongs to the lower bracket: exactly 3 in (76.2 mm) is 1 point, exactly
    1 in (25.4 mm) of hole is 2 points. A zero length (a point-like defect) is still a defect.
    """
    _check_finite("defect length_mm", length_mm, allow_zero=True)
    inches = length_mm / MM_PER_INCH - _SLACK
    if is_hole:
        return 2 if inches <= 1 else 4
    if inches <= 3:
        return 1
    if inches <= 6:
        return 2
    if inches <= 9:
        return 3
    return 4


def yard_of(position_mm: float) -> int:
    """0-based linear yard of a position along the roll; yard k spans [k, k + 1) * 914.4 mm,
    so a defect exactly on a yard mark belongs to the yard that starts there."""
    _check_finite("defect position_mm", position_mm, allow_zero=True)
    return math.floor(position_mm / MM_PER_YARD + _SLACK)


def points_per_100_sq_yd(
    total_points: float, inspected_length_yd: float, fabric_width_in: float
) -> float:
    """Points normalised to 100 square yards: total * 3600 / (length_yd * width_in).

    3600 = 100 sq yd expressed in yard-inches (100 * 36), the units of length x width here.
    """
    if not math.isfinite(total_points) or total_points < 0:
        raise ValueError(f"total points must be finite and >= 0, got {total_points!r}")
    _check_finite("inspected length (yd)", inspected_length_yd, allow_zero=False)
    _check_finite("fabric width (in)", fabric_width_in, allow_zero=False)
    return total_points * 3600 / (inspected_length_yd * fabric_width_in)


def fabric_verdict(
    defects: list[FabricDefect],
    *,
    inspected_length_mm: float,
    width_mm: float,
    limit: float = DEFAULT_LIMIT,
) -> FabricReport:
    """Score every defect, cap each linear yard at 4 points, and judge the roll.

    A defect is assigned to the yard holding its position; its length is its largest dimension
    (often across the width), so it is not spread over yards. A lengthwise defect that runs
    through several yards should be reported once per yard it crosses. The last yard may be
    partial and is capped like any other.
    """
    _check_finite("inspected_length_mm", inspected_length_mm, allow_zero=False)
    _check_finite("width_mm", width_mm, allow_zero=False)
    if not math.isfinite(limit) or limit < 0:
        raise ValueError(f"limit must be finite and >= 0 points per 100 sq yd, got {limit!r}")
    # A partial last yard is a yard of its own: 1000 mm of roll is yards 0 and 1.
    last_yard = max(math.ceil(inspected_length_mm / MM_PER_YARD - _SLACK) - 1, 0)
    scored = []
    for defect in defects:
        if defect.position_mm > inspected_length_mm:
            raise ValueError(
                f"defect at {defect.position_mm} mm lies beyond the inspected length "
                f"{inspected_length_mm} mm"
            )
        points = defect_points(defect.length_mm, is_hole=defect.is_hole)
        # The roll's far end (position == inspected length) belongs to the last yard.
        yard = min(yard_of(defect.position_mm), last_yard)
        scored.append(ScoredDefect(defect=defect, points=points, yard=yard))

    raw: dict[int, int] = defaultdict(int)
    for item in scored:
        raw[item.yard] += item.points
    yards = [
        YardPoints(yard=y, raw_points=p, points=min(p, MAX_POINTS_PER_YARD))
        for y, p in sorted(raw.items())
    ]
    total = sum(y.points for y in yards)
    length_yd = inspected_length_mm / MM_PER_YARD
    width_in = width_mm / MM_PER_INCH
    score = points_per_100_sq_yd(total, length_yd, width_in)
    return FabricReport(
        defects=scored,
        yards=yards,
        total_points=total,
        inspected_length_yd=length_yd,
        width_in=width_in,
        points_per_100_sq_yd=score,
        limit=limit,
        passed=score <= limit,
    )


def _check_finite(name: str, value: float, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
