"""ASTM D5430 4-point system: points per defect, the per-yard cap, points per 100 sq yd."""

from __future__ import annotations

import pytest

from qc.reports.fourpoint import (
    FabricDefect,
    defect_points,
    fabric_verdict,
    points_per_100_sq_yd,
    yard_of,
)

YARD_MM = 914.4
ROLL_100_YD_MM = 100 * YARD_MM  # 91 440 mm
WIDTH_60_IN_MM = 60 * 25.4  # 1 524 mm


@pytest.mark.parametrize(
    ("length_mm", "points"),
    [
        (0.0, 1),  # a point-like defect still counts
        (50.8, 1),  # 2 in
        (76.2, 1),  # exactly 3 in: upper bound of the 1-point bracket
        (76.3, 2),
        (127.0, 2),  # 5 in
        (152.4, 2),  # exactly 6 in
        (152.5, 3),
        (228.6, 3),  # exactly 9 in
        (228.7, 4),
        (2000.0, 4),  # any longer defect still earns 4
    ],
)
def test_points_by_length(length_mm, points):
    assert defect_points(length_mm) == points


@pytest.mark.parametrize(
    ("length_mm", "points"),
    [(0.0, 2), (12.7, 2), (25.4, 2), (25.5, 4), (100.0, 4)],  # 25.4 mm = exactly 1 in -> 2
)
def test_points_for_holes(length_mm, points):
    assert defect_points(length_mm, is_hole=True) == points


@pytest.mark.parametrize(
    ("position_mm", "yard"),
    [(0.0, 0), (914.3, 0), (914.4, 1), (1828.8, 2), (ROLL_100_YD_MM - 0.1, 99)],
)
def test_yard_of_position(position_mm, yard):
    assert yard_of(position_mm) == yard


def test_points_per_100_sq_yd_worked_example():
    # 100 yd x 60 in roll with 120 points: 120 * 3600 / (100 * 60) = 72.
    assert points_per_100_sq_yd(120, 100, 60) == 72.0
    # 58 in wide, 50 yd, 20 points: 72000 / 2900 = 24.8275...
    assert points_per_100_sq_yd(20, 50, 58) == pytest.approx(24.827586206896552)


def test_fabric_verdict_worked_example():
    defects = [
        FabricDefect(length_mm=50.8, position_mm=100.0),  # yard 0, 2 in -> 1
        FabricDefect(length_mm=127.0, position_mm=800.0),  # yard 0, 5 in -> 2
        FabricDefect(length_mm=254.0, position_mm=914.4),  # yard 1 (on its mark), 10 in -> 4
        FabricDefect(length_mm=25.4, position_mm=1500.0),  # yard 1, 1 in -> 1 (yard capped at 4)
        FabricDefect(length_mm=12.7, position_mm=5 * YARD_MM + 1, is_hole=True),  # yard 5 -> 2
        FabricDefect(length_mm=203.2, position_mm=ROLL_100_YD_MM),  # roll's end: yard 99, 8 in -> 3
    ]
    report = fabric_verdict(defects, inspected_length_mm=ROLL_100_YD_MM, width_mm=WIDTH_60_IN_MM)
    assert [d.points for d in report.defects] == [1, 2, 4, 1, 2, 3]
    assert [(y.yard, y.raw_points, y.points) for y in report.yards] == [
        (0, 3, 3),
        (1, 5, 4),
        (5, 2, 2),
        (99, 3, 3),
    ]
    assert report.total_points == 12
    assert report.inspected_length_yd == pytest.approx(100)
    assert report.width_in == pytest.approx(60)
    # 12 * 3600 / (100 * 60) = 7.2
    assert report.points_per_100_sq_yd == pytest.approx(7.2)
    assert report.passed


def test_120_points_on_100_yd_by_60_in_fails_at_72():
    # 30 yards each holding one defect over 9 in: 30 * 4 = 120 points -> 72 per 100 sq yd.
    defects = [FabricDefect(length_mm=300.0, position_mm=y * YARD_MM + 10) for y in range(30)]
    report = fabric_verdict(defects, inspected_length_mm=ROLL_100_YD_MM, width_mm=WIDTH_60_IN_MM)
    assert report.total_points == 120
    assert report.points_per_100_sq_yd == pytest.approx(72.0)
    assert not report.passed


def test_cap_of_four_points_per_yard():
    defects = [FabricDefect(length_mm=300.0, position_mm=3 * YARD_MM + i) for i in range(5)]
    report = fabric_verdict(defects, inspected_length_mm=ROLL_100_YD_MM, width_mm=WIDTH_60_IN_MM)
    assert [(y.yard, y.raw_points, y.points) for y in report.yards] == [(3, 20, 4)]
    assert report.total_points == 4


def test_limit_is_inclusive():
    # 100 yd x 36 in: 40 points -> 40 * 3600 / 3600 = 40.0 = limit -> pass; 41 -> fail.
    forty = [FabricDefect(length_mm=300.0, position_mm=y * YARD_MM) for y in range(10)]
    report = fabric_verdict(forty, inspected_length_mm=ROLL_100_YD_MM, width_mm=36 * 25.4)
    assert report.points_per_100_sq_yd == pytest.approx(40.0)
    assert report.passed
    one_more = [*forty, FabricDefect(length_mm=10.0, position_mm=50 * YARD_MM)]
    report = fabric_verdict(one_more, inspected_length_mm=ROLL_100_YD_MM, width_mm=36 * 25.4)
    assert report.points_per_100_sq_yd == pytest.approx(41.0)
    assert not report.passed
    report = fabric_verdict(
        one_more, inspected_length_mm=ROLL_100_YD_MM, width_mm=36 * 25.4, limit=41
    )
    assert report.passed


def test_zero_defects_pass_with_zero_points():
    report = fabric_verdict([], inspected_length_mm=ROLL_100_YD_MM, width_mm=WIDTH_60_IN_MM)
    assert (report.total_points, report.points_per_100_sq_yd, report.passed) == (0, 0.0, True)
    assert report.yards == [] and report.defects == []


def test_partial_last_yard_is_a_yard_of_its_own():
    # 1000 mm of roll = yard 0 (0-914.4 mm) and a partial yard 1; the far end belongs to yard 1.
    defects = [
        FabricDefect(length_mm=300.0, position_mm=950.0),
        FabricDefect(length_mm=300.0, position_mm=1000.0),
    ]
    report = fabric_verdict(defects, inspected_length_mm=1000.0, width_mm=WIDTH_60_IN_MM)
    assert [(y.yard, y.raw_points, y.points) for y in report.yards] == [(1, 8, 4)]


@pytest.mark.parametrize(
    "call",
    [
        lambda: defect_points(-1.0),
        lambda: defect_points(float("nan")),
        lambda: defect_points(float("inf")),
        lambda: yard_of(-0.5),
        lambda: points_per_100_sq_yd(10, 100, 0),
        lambda: points_per_100_sq_yd(10, 0, 60),
        lambda: points_per_100_sq_yd(-1, 100, 60),
        lambda: fabric_verdict([], inspected_length_mm=ROLL_100_YD_MM, width_mm=0),
        lambda: fabric_verdict([], inspected_length_mm=-5.0, width_mm=WIDTH_60_IN_MM),
        lambda: fabric_verdict(
            [], inspected_length_mm=ROLL_100_YD_MM, width_mm=WIDTH_60_IN_MM, limit=-1
        ),
        lambda: fabric_verdict(
            [FabricDefect(length_mm=-3.0, position_mm=10.0)],
            inspected_length_mm=ROLL_100_YD_MM,
            width_mm=WIDTH_60_IN_MM,
        ),
        lambda: fabric_verdict(
            [FabricDefect(length_mm=3.0, position_mm=-10.0)],
            inspected_length_mm=ROLL_100_YD_MM,
            width_mm=WIDTH_60_IN_MM,
        ),
        lambda: fabric_verdict(  # beyond the inspected length
            [FabricDefect(length_mm=3.0, position_mm=ROLL_100_YD_MM + 1)],
            inspected_length_mm=ROLL_100_YD_MM,
            width_mm=WIDTH_60_IN_MM,
        ),
    ],
)
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()
