"""Position-aware normalisation for a fixed camera: columns that are hot on every good image are quieted.

A line-scan camera sees the same place across the web in the same column of every strip: a machine
bed beside the cloth, a selvage, a fabric's mottled edge zone. The network's heat there on good
strips is a property of the station, not a defect. After training, the hottest local heat of
every column over the good images it trained on gives a profile (``calibration.column_profile_share``
can take what a share of them reach instead: measured worse); a column whose profile exceeds
``allowed`` (half again the median column's: up to that is the noise between columns) has its heat
scaled so that the profile would come down to ``allowed``. A column is never made hotter, and only
columns hot on good images are quieted, in proportion. A defect elsewhere keeps its full heat; one
inside a quieted column needs more.

It applies only to images as wide as the profile (the same camera); any other width is left as it
is. The profile lives in the model card (``position``), so it travels with the model and the
thresholds calibrated with it.

What a factor scales (the card's ``position.applies_to``): ``heat`` multiplies the heat itself, so
a column whose good heat peaked at twice the allowance halves a defect there too (0.99 -> 0.49,
where good strips peak at 0.08); ``odds`` multiplies the odds h / (1 - h) by the factor the same
allowance gives in odds, which for faint heat is the same quieting and leaves heat near 1 near 1
(0.99 -> 0.98 in that column), while a column hot near 1 on every good strip is quieted as before.
Cards from before the choice existed scale the heat.

Measured on the AITEX dev fabrics before it was built (seed-0 models of ``qc bench aitex``,
smoothed maps' 5x5 maximum as the score): image AUROC 00 0.61 -> 0.82,
02 0.88 -> 0.93, 04 1.00 -> 0.99, 06 0.52 -> 0.96; bench/bench_position.py measures the real path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from qc.padding import SCORE_WINDOW_PX  # the image score's local average: profile and score agree

TOLERANCE = 1.5  # x the median column's heat: columns up to that are left alone
SPREAD_PX = 65  # a column's allowance covers its neighbours: heat shifts a little from strip to strip
MAX_FIT_IMAGES = 64  # enough to see every hot column; bounds the time it costs after training
MAX_PROFILE_HEAT = 0.9999  # odds of a column hot at 1.0 on a good image stay finite

AppliesTo = Literal["heat", "odds"]


@dataclass(frozen=True)
class ColumnFactors:
    """One factor in (0, 1] per column and what it scales (``heat`` or ``odds``)."""

    scale: np.ndarray  # (W,) float32
    applies_to: AppliesTo = "heat"

    @classmethod
    def from_record(cls, record) -> "ColumnFactors | None":
        """From the card's ``position`` (a PositionRecord or its dict), or None without one."""
        if record is None:
            return None
        fields = record if isinstance(record, dict) else record.model_dump()
        return cls(np.asarray(fields["scale"], np.float32), fields.get("applies_to", "heat"))


def column_heat(heatmap: np.ndarray) -> np.ndarray:
    """(W,): the hottest 5x5 local average of the heatmap in each column."""
    local = cv2.blur(heatmap.astype(np.float32, copy=False), (SCORE_WINDOW_PX, SCORE_WINDOW_PX), borderType=cv2.BORDER_REPLICATE)
    return local.max(axis=0)


def fit_position_scale(
    heatmaps: list[np.ndarray], applies_to: AppliesTo = "heat", profile_share: float = 0.0
) -> list[float]:
    """Per-column factors in (0, 1] from good images' heatmaps, all of one width."""
    widths = {h.shape[1] for h in heatmaps}
    if len(widths) != 1:
        raise ValueError(f"a position profile needs images of one width, got {sorted(widths)}")
    return scale_from_column_heats([column_heat(h) for h in heatmaps], applies_to, profile_share)


def odds(heat: np.ndarray | float) -> np.ndarray | float:
    return heat / (1.0 - heat)


def profile_rank(images: int, profile_share: float) -> int:
    """How many good images must reach a column's profile heat: at least ``profile_share`` of them, and one."""
    # The epsilon keeps a float product such as 0.3 * 10 = 3.0000000000000004 from asking one image more.
    return min(images, max(1, math.ceil(profile_share * images - 1e-9)))


def scale_from_column_heats(
    heats: list[np.ndarray], applies_to: AppliesTo = "heat", profile_share: float = 0.0
) -> list[float]:
    """``fit_position_scale`` from each image's ``column_heat``: calibration refits without one image
    at a time from these, not from the maps.

    A column's profile is the heat that at least ``profile_share`` of the images reach there (0: the
    hottest image's alone): above 0, a speck on one good image leaves its column as it is (that image's
    score then weighs on the image threshold instead), and only heat most images share is quieted.
    """
    if not heats:
        raise ValueError("a position profile needs at least one good image")
    rank = profile_rank(len(heats), profile_share)
    reached = np.sort(np.stack(heats), axis=0)[len(heats) - rank]  # what `rank` of the images reach
    reached = cv2.dilate(reached[None, :], np.ones((1, SPREAD_PX), np.uint8))[0]
    allowed = max(TOLERANCE * float(np.median(reached)), 1e-6)
    profile = np.maximum(reached, allowed).astype(np.float64)
    if applies_to == "odds":
        allowed = min(allowed, MAX_PROFILE_HEAT)
        factors = odds(allowed) / odds(np.clip(profile, allowed, MAX_PROFILE_HEAT))
    else:
        factors = allowed / profile
    # Rounded for the card, but never to 0: the card refuses a factor that silences a column.
    return [max(round(v, 5), 1e-5) for v in factors.tolist()]


def quieted_columns(scale: list[float]) -> int:
    return sum(v < 1.0 for v in scale)


def fixed_camera(sizes: list[tuple[int, int]], mode: str) -> bool:
    """Whether images of these (height, width) come from a fixed camera whose columns mean places.

    ``auto``: every image as wide as the others and a line-scan strip (at least 4 times wider than
    tall; strips may differ in length); ``always``: every image as wide as the others; ``never``.
    """
    if mode == "never" or not sizes or len({width for _, width in sizes}) != 1:
        return False
    return mode == "always" or all(width >= 4 * height for height, width in sizes)


def apply_position_scale(
    heatmap: np.ndarray, score: float, factors: ColumnFactors | None
) -> tuple[np.ndarray, float]:
    """Scale the columns (in place where the map is float32) and re-score (the hottest 5x5
    average); unchanged for another width."""
    if factors is None or heatmap.shape[1] != len(factors.scale):
        return heatmap, score
    scaled = heatmap.astype(np.float32, copy=False)
    if factors.applies_to == "odds":
        # odds x s, back to heat: s.h / (1 - h + s.h); 0 stays 0 and 1 stays 1.
        quieted = scaled * factors.scale[None, :]
        scaled -= 1.0
        scaled *= -1.0
        scaled += quieted
        np.divide(quieted, np.maximum(scaled, 1e-12), out=scaled)
    else:
        scaled *= factors.scale[None, :]
    return scaled, float(column_heat(scaled).max())
