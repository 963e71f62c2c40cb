"""Blank padding is never a defect: the heatmap is cleared there and beside it.

Line-scan strips end in flat, saturated white padding. The network has
seen few such edges, and its hottest false alarms on real strips sit exactly where fabric meets
padding. Padding is found by the measured flatness rule of qc.data.blank (9x9 local standard
deviation under 2 grey levels) on saturated pixels, kept only where it touches the image border (a flat hole or stain
inside the cloth is a defect, not padding), and widened by a small margin.
"""

from __future__ import annotations

import cv2
import numpy as np

from qc.data.blank import FLAT_STD, FLAT_WINDOW_PX

MARGIN_PX = 8
SATURATED_HIGH, SATURATED_LOW = 250.0, 5.0  # grey levels
MIN_AREA_FRACTION = 0.01  # specks of flat cloth are not padding
SCORE_WINDOW_PX = 5  # the network's own image score: hottest 5x5 local average
BAND_ROWS = 256  # rows of the flatness rule's float work at a time


def padding_mask(image_rgb: np.ndarray) -> np.ndarray | None:
    """Boolean (H, W) mask of border-connected flat padding plus margin, or None if there is none."""
    grey_u8 = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    border = np.concatenate([grey_u8[0], grey_u8[-1], grey_u8[:, 0], grey_u8[:, -1]])
    if not ((border >= SATURATED_HIGH) | (border <= SATURATED_LOW)).any():
        return None  # padding touches the border: without a saturated border pixel there is none
    flat = _flat_and_saturated(grey_u8)
    if not flat.any():
        return None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
    h, w = flat.shape
    keep = np.zeros(n, bool)
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        touches_border = x == 0 or y == 0 or x + bw == w or y + bh == h
        keep[i] = touches_border and area >= MIN_AREA_FRACTION * h * w
    if not keep.any():
        return None
    mask = keep.astype(np.uint8)[labels]
    del labels, flat, grey_u8  # before the dilation: the int32 labels are 4 bytes a pixel
    # The 9x9 flatness window stops half a window short of the padding's edge: add that back.
    reach = MARGIN_PX + FLAT_WINDOW_PX // 2
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * reach + 1, 2 * reach + 1))
    return cv2.dilate(mask, kernel) > 0


def _flat_and_saturated(grey_u8: np.ndarray) -> np.ndarray:
    """uint8 (H, W): 1 where the 9x9 neighbourhood is flat and saturated.

    Worked out a band of rows at a time (each with the window's reach of rows above and below):
    the float work of a 50 MP upload would otherwise be three 200 MB images. The box sums of
    whole grey levels and their squares are exact, so the bands give the whole image's answer.
    """
    height = grey_u8.shape[0]
    reach = FLAT_WINDOW_PX // 2
    flat = np.empty(grey_u8.shape, np.uint8)
    for top in range(0, height, BAND_ROWS):
        bottom = min(height, top + BAND_ROWS)
        above = min(top, reach)
        band = _flat_and_saturated_rows(grey_u8[top - above : min(height, bottom + reach)])
        flat[top:bottom] = band[above : above + bottom - top]
    return flat


def _flat_and_saturated_rows(grey_u8: np.ndarray) -> np.ndarray:
    k = (FLAT_WINDOW_PX, FLAT_WINDOW_PX)
    grey = grey_u8.astype(np.float32)
    mean = cv2.blur(grey, k)
    var = cv2.blur(np.multiply(grey, grey, out=grey), k)
    # Padding is flat AND saturated (the white ends of a strip, a black frame): flat cloth of a
    # smooth, mid-grey fabric must never be mistaken for it.
    saturated = (mean >= SATURATED_HIGH) | (mean <= SATURATED_LOW)
    var -= np.multiply(mean, mean, out=mean)
    np.maximum(var, 0.0, out=var)
    return ((var < FLAT_STD**2) & saturated).astype(np.uint8)


def suppress_padding(image_rgb: np.ndarray, heatmap: np.ndarray, score: float) -> tuple[np.ndarray, float]:
    """Clear the heatmap over padding and re-score what is left; unchanged when there is none.
    A float32 heatmap is cleared in place (no copy of a large image's map)."""
    mask = padding_mask(image_rgb)
    if mask is None:
        return heatmap, score
    cleared = heatmap.astype(np.float32, copy=False)
    cleared[mask] = 0.0
    del mask
    local = cv2.blur(cleared, (SCORE_WINDOW_PX, SCORE_WINDOW_PX), borderType=cv2.BORDER_REPLICATE)
    return cleared, float(local.max())
