"""Blank padding is never a defect: the heatmap is cleared there and beside it (suppress_padding);
for a model whose card asks for it, the network is fed mirrored cloth there (fill_padding).

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


def fill_padding(image_rgb: np.ndarray) -> np.ndarray:
    """The image with its padding (padding_mask) painted over by the cloth's own mirror image, for
    the network to look at; the image itself when it has none.

    The network normalises each tile by the tile's own statistics, so a tile that is partly flat
    white padding squashes the cloth's contrast, and it went blind there: on AITEX 00 cut
    selvages 20 to 50 px from the padding scored 0.00 in every tile that held some padding and 0.5
    to 1.0 in tiles starting at the cloth's edge. Mirrored cloth keeps a tile's statistics the
    cloth's own (measured as an option, not the default: docs/detector-log.md).
    The heatmap over the padding is still cleared afterwards (suppress_padding, on the original).

    Each row's padding at its two ends is mirrored from that row's cloth (line-scan strips are
    padded at their ends); rows that are padding from end to end (a frame padded at the top or
    bottom) are then mirrored from the columns. Padding left inside a row stays as it is.
    """
    mask = padding_mask(image_rgb)
    if mask is None:
        return image_rgb
    filled, cloth_rows = _mirror_row_ends(image_rgb, mask)
    if cloth_rows.any() and not cloth_rows.all():
        columns_mask = np.broadcast_to(~cloth_rows[None, :], (mask.shape[1], mask.shape[0]))
        filled_t, _ = _mirror_row_ends(filled.transpose(1, 0, 2), columns_mask)
        filled = np.ascontiguousarray(filled_t.transpose(1, 0, 2))
    return filled


def _mirror_row_ends(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(copy of image with each row's masked ends mirrored from its unmasked span, rows with any
    unmasked pixel)."""
    filled = np.array(image, copy=True, order="C")
    cloth = ~mask
    cloth_rows = cloth.any(axis=1)
    width = mask.shape[1]
    first = np.argmax(cloth, axis=1)
    last = width - 1 - np.argmax(cloth[:, ::-1], axis=1)
    for row in np.flatnonzero(cloth_rows & ((first > 0) | (last < width - 1))):
        a, b = int(first[row]), int(last[row])
        # "symmetric" reflects again as often as needed when the padding is wider than the cloth.
        filled[row] = np.pad(image[row, a : b + 1], ((a, width - 1 - b), (0, 0)), mode="symmetric")
    return filled, cloth_rows


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
