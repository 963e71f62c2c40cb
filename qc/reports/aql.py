"""Lot acceptance sampling: ISO 2859-1 single sampling plans, normal inspection.

A QC manager states an AQL per defect class (e.g. critical 0, major 2.5, minor 4.0); the
standard turns lot size + inspection level into a sample size and, per AQL, an acceptance number
Ac and a rejection number Re. The lot is accepted for a class when the defects found in the
sample are <= Ac (Re is always Ac + 1 for single sampling).

Source: ISO 2859-1:1999 Table 1 (sample size code letters) and Table 2-A (single sampling plans
for normal inspection, master table); identical to ANSI/ASQ Z1.4 Tables I and II-A and
MIL-STD-105E. Tightened/reduced inspection and the switching rules are not implemented.

Every cell of both tables, including AQL 25-1000 and each arrow followed to its plan, was checked
against two independent published copies, which agree with each other and with this module:

- GB/T 2828.1-2012, the Chinese adoption of ISO 2859-1:1999 (identical), transcribed from the
  scanned standard: github.com/nihantao-crosis/quality-platform,
  src/core/__tests__/fixtures/gbt2828-1-2012-table1-levels.tsv,
  gbt2828-1-2012-tables-2abc-full16.tsv and gbt2828-1-2012-tables-2abc-aql15-1000.tsv.
- MIL-STD-105E (1989), machine-read from its legible copy, arrows from the drawn vectors:
  github.com/kotaooka/sampling-calc, tests/mil105e-legible.js. That copy misprints Re 45 as 65
  and two Table 1 cells (its project lists them); the GB/T copy and
  github.com/cyjme/aql-calculator aql.js (Table 1) give the values used here.

tests/qc/test_aql.py pins every cell against values transcribed from these copies.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

LEVELS = ("S-1", "S-2", "S-3", "S-4", "I", "II", "III")
LETTERS = "ABCDEFGHJKLMNPQR"  # the standard skips I and O

# Table 1: upper bound of each lot size range -> code letter per level, in LEVELS order.
# The last range (500 001 and over) is open-ended.
_TABLE_1: tuple[tuple[float, str], ...] = (
    (8, "AAAAAAB"),
    (15, "AAAAABC"),
    (25, "AABBBCD"),
    (50, "ABBCCDE"),
    (90, "BBCCCEF"),
    (150, "BBCDDFG"),
    (280, "BCDEEGH"),
    (500, "BCDEFHJ"),
    (1200, "CCEFGJK"),
    (3200, "CDEGHKL"),
    (10000, "CDFGJLM"),
    (35000, "CDFHKMN"),
    (150000, "DEGJLNP"),
    (500000, "DEGJMPQ"),
    (math.inf, "DEHKNQR"),
)

# Table 2-A, sample size per code letter.
SAMPLE_SIZES: dict[str, int] = {
    "A": 2, "B": 3, "C": 5, "D": 8, "E": 13, "F": 20, "G": 32, "H": 50,
    "J": 80, "K": 125, "L": 200, "M": 315, "N": 500, "P": 800, "Q": 1250, "R": 2000,
}  # fmt: skip

# Table 2-A, one column per AQL, one cell per code letter A..R (16 cells, top to bottom).
# "Ac/Re" is a plan; "v" = use the first plan below the arrow, "^" = the first plan above.
# The table is diagonal: moving one letter down and one AQL left gives the same cell; along a
# diagonal the cells run v.. 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^..; only rows A-E
# (n <= 13) go on to 30/31 and 44/45 (AQL 100-1000, which count nonconformities per 100 units).
# The two corners where that pattern would point off the table are printed otherwise, as the
# copies cited above show: A @ 10 is part of column 10's down arrow to C (1/2), R @ 0.015 part of
# column 0.015's up arrow to P (0/1).
_TABLE_2A: dict[str, str] = {
    "0.010": "v v v v v v v v v v v v v v 0/1 ^",
    "0.015": "v v v v v v v v v v v v v 0/1 ^ ^",
    "0.025": "v v v v v v v v v v v v 0/1 ^ v 1/2",
    "0.040": "v v v v v v v v v v v 0/1 ^ v 1/2 2/3",
    "0.065": "v v v v v v v v v v 0/1 ^ v 1/2 2/3 3/4",
    "0.10": "v v v v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6",
    "0.15": "v v v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8",
    "0.25": "v v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11",
    "0.40": "v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15",
    "0.65": "v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22",
    "1.0": "v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^",
    "1.5": "v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^",
    "2.5": "v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^",
    "4.0": "v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^",
    "6.5": "0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^",
    "10": "v v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^",
    "15": "v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^",
    "25": "1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^",
    "40": "2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^ ^",
    "65": "3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^",
    "100": "5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^",
    "150": "7/8 10/11 14/15 21/22 30/31 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^",
    "250": "10/11 14/15 21/22 30/31 44/45 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^",
    "400": "14/15 21/22 30/31 44/45 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^",
    "650": "21/22 30/31 44/45 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^",
    "1000": "30/31 44/45 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^",
}
TABLE_2A: dict[float, tuple[str, ...]] = {
    float(aql): tuple(column.split()) for aql, column in _TABLE_2A.items()
}
AQLS: tuple[float, ...] = (0.0, *TABLE_2A)  # 0 = zero acceptance, see plan()

DEFAULT_AQLS: dict[str, float] = {"critical": 0.0, "major": 2.5, "minor": 4.0}


class SamplingPlan(BaseModel):
    """What to inspect and how many defects a lot may have."""

    model_config = ConfigDict(frozen=True)

    code_letter: str  # from Table 1
    plan_letter: str  # the letter whose plan is used, after following Table 2-A's arrows
    sample_size: int  # already capped at the lot size
    accept: int  # Ac: accept when found <= accept
    reject: int  # Re: reject when found >= reject
    full_inspection: bool  # the plan's sample reached the lot size: inspect every unit


class ClassVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    defect_class: str
    aql: float
    plan: SamplingPlan
    found: int
    accepted: bool


class LotVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    lot_size: int
    level: str
    sample_size: int  # units to inspect: the largest sample any class needs
    classes: list[ClassVerdict]
    accepted: bool  # every class accepted


def code_letter(lot_size: int, level: str = "II") -> str:
    """Table 1: the sample size code letter of a lot."""
    _check_lot_size(lot_size)
    column = _level_index(level)
    for upper, letters in _TABLE_1:
        if lot_size <= upper:
            return letters[column]
    raise AssertionError("the last range of Table 1 is open-ended")


def plan(lot_size: int, aql: float, *, level: str = "II") -> SamplingPlan:
    """The single sampling plan (normal inspection) for a lot and an AQL in percent.

    Arrows in Table 2-A are followed to the first plan below or above, which changes the sample
    size; when that sample reaches the lot size every unit is inspected (sample size = lot size,
    same Ac/Re), as the standard's note under Table 2-A says.

    AQL 0 is not in ISO 2859-1; it is the trade's convention for critical defects: a c = 0 plan
    (Ac 0, Re 1) with the code letter's own sample size, so one critical defect rejects the lot.
    """
    letter = code_letter(lot_size, level)
    column = _column(aql)
    if column is None:
        plan_letter, accept, reject = letter, 0, 1
    else:
        plan_letter, accept, reject = _resolve(column, LETTERS.index(letter))
    sample_size = SAMPLE_SIZES[plan_letter]
    return SamplingPlan(
        code_letter=letter,
        plan_letter=plan_letter,
        sample_size=min(sample_size, lot_size),
        accept=accept,
        reject=reject,
        full_inspection=sample_size >= lot_size,
    )


def lot_verdict(
    lot_size: int,
    defects_found: Mapping[str, int],
    aqls: Mapping[str, float] | None = None,
    level: str = "II",
    sample_size_inspected: int | None = None,
) -> LotVerdict:
    """Accept or reject a lot from the defects found per class (each class judged on its plan).

    ``defects_found`` counts defective units per class; classes named in ``aqls`` but absent here
    found none. ``sample_size_inspected``, when given, is checked to cover every class's sample:
    an inspector who drew fewer units than a plan needs has not carried out that plan.
    """
    aqls = DEFAULT_AQLS if aqls is None else aqls
    if not aqls:
        raise ValueError("aqls is empty: name at least one defect class and its AQL")
    unknown = sorted(set(defects_found) - set(aqls))
    if unknown:
        raise ValueError(f"defect classes {unknown} have no AQL; known: {sorted(aqls)}")
    classes = []
    for name, aql in aqls.items():
        found = defects_found.get(name, 0)
        if isinstance(found, bool) or not isinstance(found, numbers.Integral) or found < 0:
            raise ValueError(f"defects found for {name!r} must be an integer >= 0, got {found!r}")
        class_plan = plan(lot_size, aql, level=level)
        classes.append(
            ClassVerdict(
                defect_class=name,
                aql=float(aql),
                plan=class_plan,
                found=int(found),
                accepted=found <= class_plan.accept,
            )
        )
    needed = max(c.plan.sample_size for c in classes)
    if sample_size_inspected is not None:
        if not needed <= sample_size_inspected <= lot_size:
            raise ValueError(
                f"sample_size_inspected={sample_size_inspected} must lie between the "
                f"plans' sample size {needed} and the lot size {lot_size}"
            )
        needed = sample_size_inspected
    return LotVerdict(
        lot_size=lot_size,
        level=_normalise_level(level),
        sample_size=needed,
        classes=classes,
        accepted=all(c.accepted for c in classes),
    )


def _resolve(column: tuple[str, ...], row: int) -> tuple[str, int, int]:
    """Follow arrows from a cell to a plan: (letter, Ac, Re)."""
    step = {"v": 1, "^": -1}.get(column[row], 0)
    r = row
    while 0 <= r < len(column) and column[r] in ("v", "^"):
        r += step
    if not 0 <= r < len(column):
        raise AssertionError(f"Table 2-A arrow at row {LETTERS[row]} leads off the table: {column}")
    accept, reject = (int(x) for x in column[r].split("/"))
    return LETTERS[r], accept, reject


def _column(aql: float) -> tuple[str, ...] | None:
    """The Table 2-A column of an AQL; None for AQL 0 (zero acceptance)."""
    if isinstance(aql, bool) or not isinstance(aql, numbers.Real) or math.isnan(aql):
        raise ValueError(f"AQL must be a number, got {aql!r}")
    if aql == 0:
        return None
    for value, column in TABLE_2A.items():
        # AQLs arrive as floats (2.5, 0.065); equality with a tolerance avoids 0.1 vs 0.10 traps.
        if math.isclose(aql, value, rel_tol=1e-9):
            return column
    raise ValueError(f"AQL {aql} is not in ISO 2859-1 Table 2-A; use one of {list(AQLS)}")


def _check_lot_size(lot_size: int) -> None:
    if isinstance(lot_size, bool) or not isinstance(lot_size, numbers.Integral):
        raise ValueError(f"lot size must be an integer, got {lot_size!r}")
    if lot_size < 2:
        raise ValueError(f"lot size must be at least 2 (Table 1 starts at 2), got {lot_size}")


def _normalise_level(level: str) -> str:
    normalised = str(level).strip().upper()
    if normalised not in LEVELS:
        raise ValueError(f"unknown inspection level {level!r}; use one of {list(LEVELS)}")
    return normalised


def _level_index(level: str) -> int:
    return LEVELS.index(_normalise_level(level))
