"""ISO 2859-1 single sampling, normal inspection: worked examples read off Tables 1 and 2-A."""

from __future__ import annotations

import pytest

from qc.reports.aql import (
    AQLS,
    LETTERS,
    SAMPLE_SIZES,
    TABLE_2A,
    code_letter,
    lot_verdict,
    plan,
)

# (lot size, level, AQL) -> (code letter, plan letter, sample size, Ac, Re, 100 % inspection)
WORKED_EXAMPLES = [
    # The textbook case: 501-1200 @ II = J (n 80); J @ 2.5 = 5/6, J @ 4.0 = 7/8.
    ((1200, "II", 2.5), ("J", "J", 80, 5, 6, False)),
    ((1200, "II", 4.0), ("J", "J", 80, 7, 8, False)),
    # Critical defects at AQL 0 in the same lot: Ac 0 Re 1 on the lot's own sample of 80.
    ((1200, "II", 0), ("J", "J", 80, 0, 1, False)),
    # Table 1: 281-500 @ II = H. Table 2-A: H (n 50) @ 2.5 = 3/4.
    ((500, "II", 2.5), ("H", "H", 50, 3, 4, False)),
    # H @ 4.0 = 5/6.
    ((500, "II", 4.0), ("H", "H", 50, 5, 6, False)),
    # 501-1200 @ II = J (n 80); J @ 1.0 = 2/3.
    ((1000, "II", 1.0), ("J", "J", 80, 2, 3, False)),
    # J @ 2.5 = 5/6; J @ 4.0 = 7/8.
    ((1000, "II", 2.5), ("J", "J", 80, 5, 6, False)),
    ((1000, "II", 4.0), ("J", "J", 80, 7, 8, False)),
    # 1201-3200 @ II = K (n 125); K @ 2.5 = 7/8.
    ((3200, "II", 2.5), ("K", "K", 125, 7, 8, False)),
    # One more unit crosses into 3201-10000 @ II = L (n 200); L @ 2.5 = 10/11.
    ((3201, "II", 2.5), ("L", "L", 200, 10, 11, False)),
    # 3201-10000 @ II = L; L @ 0.65 = 3/4.
    ((10000, "II", 0.65), ("L", "L", 200, 3, 4, False)),
    # Special level: 501-1200 @ S-2 = C (n 5); C @ 2.5 = 0/1.
    ((1000, "S-2", 2.5), ("C", "C", 5, 0, 1, False)),
    # 501-1200 @ S-4 = F (n 20); F @ 4.0 = 2/3.
    ((1000, "S-4", 4.0), ("F", "F", 20, 2, 3, False)),
    # 501-1200 @ I = G (n 32); G @ 2.5 = 2/3.
    ((1000, "I", 2.5), ("G", "G", 32, 2, 3, False)),
    # 501-1200 @ III = K (n 125); K @ 4.0 = 10/11.
    ((1000, "III", 4.0), ("K", "K", 125, 10, 11, False)),
    # Arrow down: 2-8 @ II = A; A @ 2.5 is v, B @ 2.5 is v, C @ 2.5 = 0/1 with n 5.
    ((8, "II", 2.5), ("A", "C", 5, 0, 1, False)),
    # Same plan for a lot of 5: the sample reaches the lot size -> inspect 100 %.
    ((5, "II", 2.5), ("A", "C", 5, 0, 1, True)),
    # Arrow up: 26-50 @ II = D; D @ 2.5 is ^, C @ 2.5 = 0/1 with n 5.
    ((50, "II", 2.5), ("D", "C", 5, 0, 1, False)),
    # Arrow down past the 0/1 diagonal: 51-90 @ II = E; E @ 2.5 is v, F @ 2.5 = 1/2 (n 20).
    ((80, "II", 2.5), ("E", "F", 20, 1, 2, False)),
    # 91-150 @ II = F; F @ 1.0 is ^, E @ 1.0 = 0/1 (n 13).
    ((150, "II", 1.0), ("F", "E", 13, 0, 1, False)),
    # 281-500 @ II = H; H @ 0.65 is v, J @ 0.65 = 1/2 (n 80).
    ((500, "II", 0.65), ("H", "J", 80, 1, 2, False)),
    # Arrow up in the lower right: 35001-150000 @ II = N; N @ 4.0 is ^, M @ 4.0 = 21/22 (n 315).
    ((100_000, "II", 4.0), ("N", "M", 315, 21, 22, False)),
    # Deep arrow down: 2-8 @ II = A; A..K @ 0.065 are v, L @ 0.065 = 0/1 (n 200) >= lot of 3.
    ((3, "II", 0.065), ("A", "L", 3, 0, 1, True)),
    # A @ 6.5 = 0/1 with n 2 = the whole lot of 2.
    ((2, "II", 6.5), ("A", "A", 2, 0, 1, True)),
    # 500001+ @ II = Q; Q @ 0.010 = 0/1 (n 1250).
    ((600_000, "II", 0.010), ("Q", "Q", 1250, 0, 1, False)),
    # 500001+ @ III = R; R @ 0.010 is ^, Q @ 0.010 = 0/1 (n 1250).
    ((600_000, "III", 0.010), ("R", "Q", 1250, 0, 1, False)),
    # Corner: R @ 0.015 is v with no row below; published guides send it up to P: 0/1, n 800.
    ((600_000, "III", 0.015), ("R", "P", 800, 0, 1, False)),
    # Corner: A @ 10 is ^ with no row above; resolved downwards: B is v, C @ 10 = 1/2 (n 5).
    ((8, "II", 10), ("A", "C", 5, 1, 2, False)),
    # Nonconformities per 100 units: 9-15 @ II = B; B @ 1000 = 44/45 (n 3).
    ((10, "II", 1000), ("B", "B", 3, 44, 45, False)),
    # 2-8 @ II = A; A @ 1000 = 30/31.
    ((8, "II", 1000), ("A", "A", 2, 30, 31, False)),
    # 51-90 @ II = E; E @ 100 = 21/22 (n 13).
    ((60, "II", 100), ("E", "E", 13, 21, 22, False)),
    # Nonconformities per 100 units, row E (n 13) carries 30/31 and 44/45 like rows A-D:
    # 51-90 @ II = E; E @ 150 = 30/31, E @ 250 = 44/45; F @ 150 is ^ up to E (n 13).
    ((90, "II", 150), ("E", "E", 13, 30, 31, False)),
    ((90, "II", 250), ("E", "E", 13, 44, 45, False)),
    ((150, "II", 150), ("F", "E", 13, 30, 31, False)),
    # E @ 400 is ^: D @ 400 = 44/45 (n 8).
    ((90, "II", 400), ("E", "D", 8, 44, 45, False)),
    # AQL 0 (critical, zero acceptance): the code letter's own sample, Ac 0 Re 1.
    ((500, "II", 0.0), ("H", "H", 50, 0, 1, False)),
    ((5, "II", 0), ("A", "A", 2, 0, 1, False)),
    # 0.1 written without the table's trailing zero ("0.10"): 1201-3200 @ II = K; K @ 0.10 = 0/1.
    ((2000, "II", 0.1), ("K", "K", 125, 0, 1, False)),
]


@pytest.mark.parametrize(("query", "expected"), WORKED_EXAMPLES)
def test_plan_worked_examples(query, expected):
    lot_size, level, aql = query
    got = plan(lot_size, aql, level=level)
    assert (
        got.code_letter,
        got.plan_letter,
        got.sample_size,
        got.accept,
        got.reject,
        got.full_inspection,
    ) == expected


@pytest.mark.parametrize(
    ("lot_size", "level", "letter"),
    [
        (2, "II", "A"),
        (8, "II", "A"),
        (9, "II", "B"),  # first lot of the 9-15 range
        (2, "III", "B"),
        (25, "S-3", "B"),
        (26, "S-1", "A"),
        (51, "S-1", "B"),
        (280, "II", "G"),
        (281, "II", "H"),
        (1000, "S-1", "C"),
        (1000, "S-3", "E"),
        (35_000, "S-4", "H"),
        (35_001, "S-4", "J"),
        (500_000, "II", "P"),
        (500_001, "II", "Q"),
        (10**9, "III", "R"),
        (10**9, "S-1", "D"),
        (1000, "s-2", "C"),  # levels are case-insensitive
    ],
)
def test_table_1_code_letters(lot_size, level, letter):
    assert code_letter(lot_size, level) == letter


def test_sample_sizes_follow_the_r10_series():
    assert list(SAMPLE_SIZES) == list(LETTERS)
    assert list(SAMPLE_SIZES.values()) == [
        2, 3, 5, 8, 13, 20, 32, 50, 80, 125, 200, 315, 500, 800, 1250, 2000,
    ]  # fmt: skip


def _expected_cell(row: int, column: int) -> str:
    """Table 2-A rebuilt from its diagonal structure, independently of the module's data."""
    diagonal = row + column  # column 0 = AQL 0.010; 0/1 sits on diagonal 14 (A @ 6.5)
    sequence = ["0/1", "^", "v", "1/2", "2/3", "3/4", "5/6", "7/8", "10/11", "14/15", "21/22"]
    if diagonal < 14:
        return "v"
    if diagonal - 14 < len(sequence):
        return sequence[diagonal - 14]
    tail = {25: "30/31", 26: "44/45"}  # only rows A-E (n <= 13) carry these plans
    return tail.get(diagonal, "^") if row <= 4 else "^"


def test_table_2a_transcription_matches_its_diagonal_structure():
    assert len(TABLE_2A) == 26
    for column, (aql, cells) in enumerate(TABLE_2A.items()):
        assert len(cells) == len(LETTERS), aql
        for row, cell in enumerate(cells):
            assert cell == _expected_cell(row, column), (aql, LETTERS[row])


# Published reproduction of MIL-STD-105E Table II-A (= ISO 2859-1 Table 2-A) for AQL 0.65 to
# 15, listing Re numbers and arrows; an independent check of the transcription.
PUBLISHED_RE = {
    "A": "v v v v v 1 ^ v",
    "B": "v v v v 1 ^ v 2",
    "C": "v v v 1 ^ v 2 3",
    "D": "v v 1 ^ v 2 3 4",
    "E": "v 1 ^ v 2 3 4 6",
    "F": "1 ^ v 2 3 4 6 8",
    "G": "^ v 2 3 4 6 8 11",
    "H": "v 2 3 4 6 8 11 15",
    "J": "2 3 4 6 8 11 15 22",
    "K": "3 4 6 8 11 15 22 ^",
    "L": "4 6 8 11 15 22 ^ ^",
    "M": "6 8 11 15 22 ^ ^ ^",
    "N": "8 11 15 22 ^ ^ ^ ^",
    "P": "11 15 22 ^ ^ ^ ^ ^",
    "Q": "15 22 ^ ^ ^ ^ ^ ^",
}


def test_table_2a_matches_published_reproduction():
    aqls = [0.65, 1.0, 1.5, 2.5, 4.0, 6.5, 10.0, 15.0]
    for letter, row in PUBLISHED_RE.items():
        cells = [TABLE_2A[aql][LETTERS.index(letter)] for aql in aqls]
        ours = [c if c in ("v", "^") else c.split("/")[1] for c in cells]
        assert ours == row.split(), letter


@pytest.mark.parametrize("aql", AQLS)
def test_every_cell_resolves_to_a_valid_plan(aql):
    starts = (2, 9, 16, 26, 51, 91, 151, 281, 501, 1201, 3201, 10001, 35001, 150001, 500001)
    letters_seen = set()
    for lot_size in starts:
        for level in ("S-1", "S-4", "I", "II", "III"):
            got = plan(lot_size, aql, level=level)
            letters_seen.add(got.code_letter)
            assert got.reject == got.accept + 1
            assert got.accept in (0, 1, 2, 3, 5, 7, 10, 14, 21, 30, 44)
            assert 1 <= got.sample_size <= lot_size
            assert got.full_inspection == (SAMPLE_SIZES[got.plan_letter] >= lot_size)
    assert letters_seen == set(LETTERS)  # every row of Table 2-A was exercised


def test_lot_verdict_garment_defaults_accept_at_the_limits():
    # Lot 500 @ II: major 2.5 -> H 3/4, minor 4.0 -> H 5/6, critical 0 -> H 0/1.
    verdict = lot_verdict(500, {"critical": 0, "major": 3, "minor": 5})
    assert verdict.accepted
    assert verdict.sample_size == 50
    assert [(c.defect_class, c.plan.accept, c.plan.reject) for c in verdict.classes] == [
        ("critical", 0, 1),
        ("major", 3, 4),
        ("minor", 5, 6),
    ]


@pytest.mark.parametrize(
    ("found", "rejected_class"),
    [
        ({"critical": 1, "major": 0, "minor": 0}, "critical"),
        ({"critical": 0, "major": 4, "minor": 0}, "major"),  # Re 4
        ({"critical": 0, "major": 0, "minor": 6}, "minor"),  # Re 6
    ],
)
def test_lot_verdict_rejects_when_one_class_reaches_re(found, rejected_class):
    verdict = lot_verdict(500, found)
    assert not verdict.accepted
    assert [c.defect_class for c in verdict.classes if not c.accepted] == [rejected_class]


def test_lot_verdict_missing_class_found_none_and_sample_is_largest_plan():
    # Lot 500 @ II = H. major 0.65: H is v -> J (n 80) 1/2; minor 2.5: H 3/4 (n 50).
    verdict = lot_verdict(500, {"minor": 3}, aqls={"major": 0.65, "minor": 2.5})
    assert verdict.accepted
    assert verdict.sample_size == 80
    major = verdict.classes[0]
    assert (major.found, major.plan.plan_letter, major.plan.sample_size) == (0, "J", 80)


def test_lot_verdict_checks_the_inspected_sample():
    assert lot_verdict(500, {"major": 1}, sample_size_inspected=80).sample_size == 80
    with pytest.raises(ValueError, match="sample_size_inspected"):
        lot_verdict(500, {"major": 1}, sample_size_inspected=40)  # plans need 50
    with pytest.raises(ValueError, match="sample_size_inspected"):
        lot_verdict(500, {"major": 1}, sample_size_inspected=501)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: plan(1, 2.5), "at least 2"),
        (lambda: plan(0, 2.5), "at least 2"),
        (lambda: plan(2.5, 2.5), "integer"),
        (lambda: plan(True, 2.5), "integer"),
        (lambda: plan(500, 2.5, level="IV"), "inspection level"),
        (lambda: plan(500, 3.0), "not in ISO 2859-1"),
        (lambda: plan(500, -1.0), "not in ISO 2859-1"),
        (lambda: plan(500, float("nan")), "number"),
        (lambda: plan(500, "2.5"), "number"),
        (lambda: lot_verdict(500, {"cosmetic": 1}), "no AQL"),
        (lambda: lot_verdict(500, {"major": -1}), ">= 0"),
        (lambda: lot_verdict(500, {"major": 1.5}), ">= 0"),
        (lambda: lot_verdict(500, {}, aqls={}), "empty"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# The plans (Ac/Re cells, arrows left out) of each row of Table 2-A, left to right, as printed in
# a published reproduction of MIL-STD-105E Table II-A; rows F to Q read the same.
PUBLISHED_ROW_PLANS = {
    "A": "0/1 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 30/31",
    **dict.fromkeys("BCDE", "0/1 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 30/31 44/45"),
    **dict.fromkeys("FGHJKLMNPQ", "0/1 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22"),
    "R": "1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22",
}


def test_table_2a_rows_match_the_published_plans():
    for row, letter in enumerate(LETTERS):
        plans = [cells[row] for cells in TABLE_2A.values() if cells[row] not in ("v", "^")]
        assert plans == PUBLISHED_ROW_PLANS[letter].split(), letter


# Arrow cells resolved as published tables that print the resolved plan per cell (sample size,
# Ac) give them: (code letter, AQL) -> (sample size, Ac).
RESOLVED_ARROWS = {
    ("A", 0.010): (1250, 0),  # v all the way down to Q
    ("R", 0.010): (1250, 0),  # ^ to Q
    ("R", 0.015): (800, 0),  # the corner: P's 0/1
    ("A", 10): (5, 1),  # the corner: C's 1/2
    ("A", 15): (3, 1),  # B's 1/2
    ("G", 0.65): (20, 0),  # ^ to F's 0/1
    ("H", 0.65): (80, 1),  # v to J's 1/2
    ("N", 4.0): (315, 21),  # ^ to M's 21/22
    ("R", 1.0): (1250, 21),  # ^ to Q's 21/22
    ("F", 100): (13, 21),  # ^ to E's 21/22
    ("R", 250): (13, 44),  # ^ to E's 44/45
    ("E", 400): (8, 44),  # ^ to D's 44/45
    ("C", 1000): (3, 44),  # ^ to B's 44/45
}


@pytest.mark.parametrize(("cell", "expected"), RESOLVED_ARROWS.items())
def test_arrow_cells_resolve_as_published(cell, expected):
    from qc.reports.aql import _resolve

    letter, aql = cell
    plan_letter, accept, _ = _resolve(TABLE_2A[float(aql)], LETTERS.index(letter))
    assert (SAMPLE_SIZES[plan_letter], accept) == expected
