"""ISO 2859-1 single sampling, normal inspection: Tables 1 and 2-A checked against published copies.

The reference values below are transcribed from two independent published copies of the tables
(not from qc/reports/aql.py), so a wrong cell in the module fails here:

- GB/T 2828.1-2012, the Chinese national adoption of ISO 2859-1:1999 (identical), as transcribed
  from the scanned standard in github.com/nihantao-crosis/quality-platform,
  src/core/__tests__/fixtures/: gbt2828-1-2012-table1-levels.tsv (Table 1),
  gbt2828-1-2012-tables-2abc-full16.tsv (Table 2-A, AQL 0.010-10) and
  gbt2828-1-2012-tables-2abc-aql15-1000.tsv (AQL 15-1000, double-blind transcription).
- MIL-STD-105E (1989, = ANSI/ASQ Z1.4 Tables I and II-A), machine-read from the text and the
  vector arrows of its legible copy in github.com/kotaooka/sampling-calc,
  tests/mil105e-legible.js (made by tests/extract_mil105e.py).

Both give every cell of Table 2-A with its arrow already followed (the plan's letter, or its
sample size, with Ac and Re). They agree on all 416 cells and with this module, except for three
misprints of the MIL-STD-105E copy that its own project lists (DEVELOPMENT.md): "44 65" for
44/45, Table 1 row 51-90 printed as a copy of row 91-150, and 501-1200 at level III printed H
for K. The GB/T copy and a third one, github.com/cyjme/aql-calculator aql.js (Table 1, all
seven levels), read 44/45, B B C C C E F and K.
"""

from __future__ import annotations

import pytest

from qc.reports.aql import (
    AQLS,
    LETTERS,
    SAMPLE_SIZES,
    TABLE_2A,
    _resolve,
    code_letter,
    lot_verdict,
    plan,
)

# Table 1 ranges of lot size; the last is open-ended.
PUBLISHED_LOT_RANGES = [
    (2, 8), (9, 15), (16, 25), (26, 50), (51, 90), (91, 150), (151, 280), (281, 500),
    (501, 1200), (1201, 3200), (3201, 10_000), (10_001, 35_000), (35_001, 150_000),
    (150_001, 500_000), (500_001, None),
]  # fmt: skip

# Table 1, one column per inspection level: the code letter of each range above, top to bottom.
PUBLISHED_TABLE_1 = {
    "S-1": "AAAABBBBCCCCDDD",
    "S-2": "AAABBBCCCDDDEEE",
    "S-3": "AABBCCDDEEFFGGH",
    "S-4": "AABCCDEEFGGHJJK",
    "I": "AABCCDEFGHJKLMN",
    "II": "ABCDEFGHJKLMNPQ",
    "III": "BCDEFGHJKLMNPQR",
}

# Table 2-A: sample size per code letter.
PUBLISHED_SAMPLE_SIZES = {
    "A": 2, "B": 3, "C": 5, "D": 8, "E": 13, "F": 20, "G": 32, "H": 50,
    "J": 80, "K": 125, "L": 200, "M": 315, "N": 500, "P": 800, "Q": 1250, "R": 2000,
}  # fmt: skip

# Table 2-A's AQL columns, left to right (AQL 15-1000 count nonconformities per 100 units).
PUBLISHED_AQLS = (
    0.010, 0.015, 0.025, 0.040, 0.065, 0.10, 0.15, 0.25, 0.40, 0.65, 1.0, 1.5, 2.5, 4.0, 6.5,
    10, 15, 25, 40, 65, 100, 150, 250, 400, 650, 1000,
)  # fmt: skip

# Table 2-A with every arrow followed: per code letter, one cell per AQL column above, written
# as the letter whose plan is used, then Ac/Re. "C1/2" at A @ 10 reads: the arrow there leads
# down to C's plan, n 5, Ac 1, Re 2.
PUBLISHED_TABLE_2A = {
    "A": "Q0/1 P0/1 N0/1 M0/1 L0/1 K0/1 J0/1 H0/1 G0/1 F0/1 E0/1 D0/1 C0/1 B0/1 A0/1 C1/2 B1/2 A1/2 A2/3 A3/4 A5/6 A7/8 A10/11 A14/15 A21/22 A30/31",
    "B": "Q0/1 P0/1 N0/1 M0/1 L0/1 K0/1 J0/1 H0/1 G0/1 F0/1 E0/1 D0/1 C0/1 B0/1 A0/1 C1/2 B1/2 B2/3 B3/4 B5/6 B7/8 B10/11 B14/15 B21/22 B30/31 B44/45",
    "C": "Q0/1 P0/1 N0/1 M0/1 L0/1 K0/1 J0/1 H0/1 G0/1 F0/1 E0/1 D0/1 C0/1 B0/1 D1/2 C1/2 C2/3 C3/4 C5/6 C7/8 C10/11 C14/15 C21/22 C30/31 C44/45 B44/45",
    "D": "Q0/1 P0/1 N0/1 M0/1 L0/1 K0/1 J0/1 H0/1 G0/1 F0/1 E0/1 D0/1 C0/1 E1/2 D1/2 D2/3 D3/4 D5/6 D7/8 D10/11 D14/15 D21/22 D30/31 D44/45 C44/45 B44/45",
    "E": "Q0/1 P0/1 N0/1 M0/1 L0/1 K0/1 J0/1 H0/1 G0/1 F0/1 E0/1 D0/1 F1/2 E1/2 E2/3 E3/4 E5/6 E7/8 E10/11 E14/15 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
    "F": "Q0/1 P0/1 N0/1 M0/1 L0/1 K0/1 J0/1 H0/1 G0/1 F0/1 E0/1 G1/2 F1/2 F2/3 F3/4 F5/6 F7/8 F10/11 F14/15 F21/22 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
    "G": "Q0/1 P0/1 N0/1 M0/1 L0/1 K0/1 J0/1 H0/1 G0/1 F0/1 H1/2 G1/2 G2/3 G3/4 G5/6 G7/8 G10/11 G14/15 G21/22 F21/22 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
    "H": "Q0/1 P0/1 N0/1 M0/1 L0/1 K0/1 J0/1 H0/1 G0/1 J1/2 H1/2 H2/3 H3/4 H5/6 H7/8 H10/11 H14/15 H21/22 G21/22 F21/22 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
    "J": "Q0/1 P0/1 N0/1 M0/1 L0/1 K0/1 J0/1 H0/1 K1/2 J1/2 J2/3 J3/4 J5/6 J7/8 J10/11 J14/15 J21/22 H21/22 G21/22 F21/22 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
    "K": "Q0/1 P0/1 N0/1 M0/1 L0/1 K0/1 J0/1 L1/2 K1/2 K2/3 K3/4 K5/6 K7/8 K10/11 K14/15 K21/22 J21/22 H21/22 G21/22 F21/22 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
    "L": "Q0/1 P0/1 N0/1 M0/1 L0/1 K0/1 M1/2 L1/2 L2/3 L3/4 L5/6 L7/8 L10/11 L14/15 L21/22 K21/22 J21/22 H21/22 G21/22 F21/22 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
    "M": "Q0/1 P0/1 N0/1 M0/1 L0/1 N1/2 M1/2 M2/3 M3/4 M5/6 M7/8 M10/11 M14/15 M21/22 L21/22 K21/22 J21/22 H21/22 G21/22 F21/22 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
    "N": "Q0/1 P0/1 N0/1 M0/1 P1/2 N1/2 N2/3 N3/4 N5/6 N7/8 N10/11 N14/15 N21/22 M21/22 L21/22 K21/22 J21/22 H21/22 G21/22 F21/22 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
    "P": "Q0/1 P0/1 N0/1 Q1/2 P1/2 P2/3 P3/4 P5/6 P7/8 P10/11 P14/15 P21/22 N21/22 M21/22 L21/22 K21/22 J21/22 H21/22 G21/22 F21/22 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
    "Q": "Q0/1 P0/1 R1/2 Q1/2 Q2/3 Q3/4 Q5/6 Q7/8 Q10/11 Q14/15 Q21/22 P21/22 N21/22 M21/22 L21/22 K21/22 J21/22 H21/22 G21/22 F21/22 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
    "R": "Q0/1 P0/1 R1/2 R2/3 R3/4 R5/6 R7/8 R10/11 R14/15 R21/22 Q21/22 P21/22 N21/22 M21/22 L21/22 K21/22 J21/22 H21/22 G21/22 F21/22 E21/22 E30/31 E44/45 D44/45 C44/45 B44/45",
}  # fmt: skip


@pytest.mark.parametrize("level", PUBLISHED_TABLE_1)
def test_table_1_matches_the_published_copies(level):
    # Both ends of every range, so a shifted boundary fails as well as a wrong letter.
    got, expected = [], []
    for (low, high), letter in zip(PUBLISHED_LOT_RANGES, PUBLISHED_TABLE_1[level], strict=True):
        for lot_size in (low, high if high is not None else 10**9):
            got.append((lot_size, code_letter(lot_size, level)))
            expected.append((lot_size, letter))
    assert got == expected


def test_table_2a_has_the_published_columns_and_sample_sizes():
    assert tuple(TABLE_2A) == PUBLISHED_AQLS
    assert SAMPLE_SIZES == PUBLISHED_SAMPLE_SIZES


def _lot_with_code_letter(letter: str) -> tuple[int, str]:
    """A lot size and inspection level that Table 1 gives this code letter (levels II, III)."""
    for level in ("II", "III"):
        for (low, _), table_letter in zip(PUBLISHED_LOT_RANGES, PUBLISHED_TABLE_1[level]):
            if table_letter == letter:
                return low, level
    raise AssertionError(f"no lot size has code letter {letter}")


@pytest.mark.parametrize("letter", PUBLISHED_TABLE_2A)
def test_table_2a_matches_the_published_copies(letter):
    lot_size, level = _lot_with_code_letter(letter)
    got, expected = [], []
    for aql, cell in zip(PUBLISHED_AQLS, PUBLISHED_TABLE_2A[letter].split(), strict=True):
        result = plan(lot_size, aql, level=level)
        assert result.code_letter == letter
        got.append((aql, f"{result.plan_letter}{result.accept}/{result.reject}"))
        expected.append((aql, cell))
        n = PUBLISHED_SAMPLE_SIZES[cell[0]]
        assert (result.sample_size, result.full_inspection) == (min(n, lot_size), n >= lot_size)
    assert got == expected

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
    # Corner: R @ 0.015 is printed as part of column 0.015's up arrow: Q is ^, P = 0/1, n 800.
    ((600_000, "III", 0.015), ("R", "P", 800, 0, 1, False)),
    # Corner: A @ 10 is printed as part of column 10's down arrow: B is v, C @ 10 = 1/2 (n 5).
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


# The two corner cells where the diagonal pattern below would put an arrow pointing off the
# table. The printed table (both copies cited above) runs column 10's down arrow through rows
# A and B to C's plan, and column 0.015's up arrow through rows Q and R to P's plan.
PRINTED_CORNERS = {(0, 15): "v", (15, 1): "^"}  # (row, column): A @ 10, R @ 0.015


def _expected_cell(row: int, column: int) -> str:
    """Table 2-A rebuilt from its diagonal structure, independently of the module's data."""
    if (row, column) in PRINTED_CORNERS:
        return PRINTED_CORNERS[row, column]
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


def test_every_arrow_points_to_a_plan_in_its_own_direction():
    # The standard's note: a down arrow means the first plan below, an up arrow the first plan
    # above; the printed table has no arrow that leads off its edge.
    for aql, cells in TABLE_2A.items():
        for row, cell in enumerate(cells):
            if cell not in ("v", "^"):
                continue
            step = 1 if cell == "v" else -1
            target = row + step
            while 0 <= target < len(cells) and cells[target] in ("v", "^"):
                target += step
            assert 0 <= target < len(cells), f"{LETTERS[row]} @ {aql}: {cell} leads off the table"


def test_an_arrow_leading_off_the_table_is_refused():
    with pytest.raises(AssertionError, match="leads off"):
        _resolve(("^", "0/1"), 0)


# A typed reproduction of MIL-STD-105E Table II-A at level II for AQL 0.65 to 15, listing Re
# numbers and arrows (www.nibs.org/FMOC/DPW_AC/AC-TABLE.ASC, table 1-A): a check of the arrow
# marks. It types one arrow per cell and puts an up arrow at A @ 10, where no plan lies above;
# the printed table carries column 10's down arrow through A there (see PRINTED_CORNERS), so
# that one cell is left out.
RETYPE_DIFFERS_FROM_PRINT = {("A", 10.0)}
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
        for aql, published in zip(aqls, row.split(), strict=True):
            if (letter, aql) in RETYPE_DIFFERS_FROM_PRINT:
                continue
            cell = TABLE_2A[aql][LETTERS.index(letter)]
            assert (cell if cell in ("v", "^") else cell.split("/")[1]) == published, (letter, aql)


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
