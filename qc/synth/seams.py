"""Sewn seams across a fabric tile: lockstitch or chain stitch on a straight or curved path.

A seam is described by a `Seam` (path, stitch type and sizes, thread colour, fold shading) drawn by
the rng, and drawn by `draw_seam`. Seam defects redraw the same seam with a change (stitches left
out, a bent path, loose threads), so the good and the faulty picture differ only where the fault is.
A seam is normal cloth, never a defect: it is not in any defect mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

SEAM_KINDS = ("lockstitch", "chain")
_SHIFT = 3  # OpenCV fixed-point bits: stitches land on sub-pixel positions
_SCALE = 1 << _SHIFT


@dataclass(frozen=True)
class Seam:
    path: np.ndarray  # (N, 2) float32 x, y about 1 px apart, running edge to edge
    kind: str  # one of SEAM_KINDS
    stitch_px: float  # length of one stitch (lockstitch dash, chain link)
    gap_px: float  # between lockstitch dashes, where the needle went through
    thread_px: int
    thread: np.ndarray = field(repr=False)  # (3,) float32 RGB 0..1
    fold_px: float  # width of the raised seam allowance beside the stitch line
    fold_light: float  # highlight on the allowance ridge, fraction of brightness
    fold_dark: float  # shadow at the allowance edge and in the groove
    fold_side: int  # +1 / -1: which side of the path the allowance lies on
    vertical: bool  # path runs top to bottom (else left to right); it is monotone along that axis
    mask: np.ndarray | None = field(default=None, repr=False)  # uint8 0/255 thread + fold, once drawn

    @property
    def pitch_px(self) -> float:
        return self.stitch_px + self.gap_px

    @property
    def stitch_count(self) -> int:
        return int(len(self.path) // self.pitch_px)


def _resample(points: np.ndarray, step_px: float = 1.0) -> np.ndarray:
    """Points at equal arc-length steps, so a path index is a distance along the seam."""
    lengths = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    stations = np.arange(0.0, lengths[-1], step_px)
    return np.stack([np.interp(stations, lengths, points[:, 0]), np.interp(stations, lengths, points[:, 1])],
                    axis=1).astype(np.float32)


def _bezier(controls: np.ndarray, count: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, count)[:, None]
    p0, p1, p2, p3 = controls
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def random_seam_path(rng: np.random.Generator, size_px: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """Straight or cubic-Bezier path from one edge to the opposite one, monotone along its axis."""
    height, width = size_px
    vertical = bool(rng.integers(2))
    along, across = (height, width) if vertical else (width, height)
    lo, hi = 0.15 * across, 0.85 * across
    start = rng.uniform(lo, hi)
    end = np.clip(start + rng.uniform(-0.35, 0.35) * along, lo, hi)
    if rng.random() < 0.5:
        middle = [start + (end - start) / 3, start + 2 * (end - start) / 3]
    else:  # a curved seam: armhole, neckline, a side seam following the body
        middle = list(rng.uniform(lo, hi, 2))
    stations = np.array([-4.0, along / 3, 2 * along / 3, along + 4.0])
    # Control points increase along the axis, so the curve never doubles back on it.
    controls = np.stack([stations, np.array([start, *middle, end])], axis=1)
    points = _bezier(controls, 4 * along)
    if vertical:
        points = points[:, ::-1]
    return _resample(points), vertical


def random_seam(rng: np.random.Generator, image: np.ndarray) -> Seam:
    """A seam fitted to `image`: thread that contrasts with the cloth, strongly or only a little."""
    size = image.shape[:2]
    path, vertical = random_seam_path(rng, size)
    kind = SEAM_KINDS[int(rng.integers(len(SEAM_KINDS)))]
    stitch = min(rng.uniform(5.0, 11.0), max(size) / 8)
    gap = rng.uniform(2.5, 4.5) if kind == "lockstitch" else rng.uniform(-0.5, 0.5)
    inside = np.round(path).astype(int)
    keep = (inside[:, 0] >= 0) & (inside[:, 0] < size[1]) & (inside[:, 1] >= 0) & (inside[:, 1] < size[0])
    under = image[inside[keep, 1], inside[keep, 0]].astype(np.float32).mean(axis=0) / 255.0
    # Tonal thread (barely visible) to contrast thread, always somewhat apart from the cloth; mostly
    # light thread on dark cloth and dark on light, sometimes the other way round.
    sign = 1.0 if (under.mean() < 0.5) == (rng.random() < 0.8) else -1.0
    if under.mean() + sign * 0.25 > 1.0 or under.mean() + sign * 0.25 < 0.0:
        sign = -sign  # no room that way: white thread on white cloth would vanish
    contrast = rng.uniform(0.2, 0.55)
    hue = under if rng.random() < 0.5 else rng.uniform(0.0, 1.0, 3)  # matching or coloured thread
    thread = np.clip(hue - hue.mean() + under.mean() + sign * contrast, 0.03, 0.97)
    return Seam(
        path=path, kind=kind, stitch_px=float(stitch), gap_px=float(gap), thread_px=int(rng.integers(1, 3)) + 1,
        thread=thread.astype(np.float32), fold_px=float(rng.uniform(4.0, 12.0)),
        fold_light=float(rng.uniform(0.04, 0.18)), fold_dark=float(rng.uniform(0.05, 0.25)),
        fold_side=1 if rng.integers(2) else -1, vertical=vertical,
    )


def _fold_shading(seam: Seam, path: np.ndarray, size_px: tuple[int, int]) -> np.ndarray:
    """Brightness factor (H, W): the allowance folded under one side makes a ridge then a step."""
    height, width = size_px
    line = np.full(size_px, 255, np.uint8)
    cv2.polylines(line, [np.round(path * _SCALE).astype(np.int32)], False, 0, 1, cv2.LINE_8, _SHIFT)
    distance = cv2.distanceTransform(line, cv2.DIST_L2, 3)
    if seam.vertical:
        where = np.interp(np.arange(height), path[:, 1], path[:, 0])[:, None]
        side = np.arange(width)[None, :] > where
    else:
        where = np.interp(np.arange(width), path[:, 0], path[:, 1])[None, :]
        side = np.arange(height)[:, None] > where
    signed = np.where(side, distance, -distance)
    w = seam.fold_px
    table_x = np.linspace(-4 * w, 4 * w, 257) * seam.fold_side
    ridge = seam.fold_light * np.exp(-(((table_x - 0.9 * w) / (0.55 * w)) ** 2))
    step = seam.fold_dark * np.exp(-(((table_x - 2.2 * w) / (0.35 * w)) ** 2))
    groove = 0.6 * seam.fold_dark * np.exp(-(((table_x + 0.4 * w) / (0.45 * w)) ** 2))
    table_y = (1.0 + np.where(table_x > 0, ridge - step, 0.0) - groove).astype(np.float32)
    # Exactly 1 where the change is under a grey level, so the seam mask ends where the seam does.
    table_y[np.abs(table_y - 1.0) < 0.003] = 1.0
    # A lookup table indexed by the signed distance: np.interp per pixel costs twice as much.
    index = np.clip(signed * np.float32(32.0 / w) + np.float32(128.5), 0, 256).astype(np.int32)
    return table_y[index]


def _stitch_ranges(seam: Seam) -> list[tuple[int, int]]:
    pitch = seam.pitch_px
    return [(int(k * pitch), int(k * pitch + seam.stitch_px)) for k in range(seam.stitch_count)]


def _draw_threads(
    canvas: np.ndarray, seam: Seam, path: np.ndarray, keep: set[int] | None, thickness: int
) -> None:
    last = len(path) - 1
    for k, (a, b) in enumerate(_stitch_ranges(seam)):
        if keep is not None and k not in keep:
            continue
        if seam.kind == "lockstitch":
            # Round line caps reach half the thread width past each end; trim so the gaps stay open.
            trim = thickness // 2
            points = path[min(a + trim, last): max(min(b - trim, last), min(a + trim, last)) + 1]
            cv2.polylines(canvas, [np.round(points * _SCALE).astype(np.int32)], False, 255, thickness,
                          cv2.LINE_AA, _SHIFT)
        else:
            # A chain link: an elongated loop along the path, each hooked into the next.
            head, tail = path[min(a, last)], path[min(b, last)]
            centre = (head + tail) / 2
            angle = float(np.degrees(np.arctan2(tail[1] - head[1], tail[0] - head[0])))
            axes = (int(round((seam.stitch_px / 2 + 1.0) * _SCALE)),
                    int(round(seam.stitch_px * 0.28 * _SCALE)) + _SCALE)
            cv2.ellipse(canvas, tuple(int(round(c * _SCALE)) for c in centre), axes, angle, 0, 360, 255,
                        max(thickness - 1, 1), cv2.LINE_AA, _SHIFT)


def draw_seam(
    image: np.ndarray, seam: Seam, *, path: np.ndarray | None = None, keep: set[int] | None = None,
    loose_threads: list[np.ndarray] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """(float32 RGB 0..1 image with the seam, uint8 0/255 seam mask).

    path replaces the seam's own (a crooked stretch); keep lists the stitches drawn (None: all);
    loose_threads are extra polylines of the same thread (floats, broken ends).
    """
    size = image.shape[:2]
    path = seam.path if path is None else path
    base = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    shading = _fold_shading(seam, path, size)
    body = np.zeros(size, np.uint8)
    _draw_threads(body, seam, path, keep, seam.thread_px)
    for points in loose_threads:
        cv2.polylines(body, [np.round(points * _SCALE).astype(np.int32)], False, 255, max(seam.thread_px - 1, 1),
                      cv2.LINE_AA, _SHIFT)
    if seam.kind == "lockstitch":
        # Needle holes: the thread dives into the cloth between dashes and leaves a small pit.
        holes = np.zeros(size, np.uint8)
        for a, _ in _stitch_ranges(seam):
            x, y = path[min(max(a - int(seam.gap_px / 2), 0), len(path) - 1)]
            cv2.circle(holes, (int(round(x * _SCALE)), int(round(y * _SCALE))), _SCALE, 255, -1, cv2.LINE_AA, _SHIFT)
        shading = shading * (1.0 - np.float32(0.35 / 255.0) * holes)
    result = base * shading[..., None]
    # Round twisted thread: a lighter crest along its middle, darker flanks. Only the few thread
    # pixels are composited, which keeps a seam cheap.
    crest = cv2.GaussianBlur(body, (3, 3), 0.8)
    where = np.nonzero(body)
    alpha = body[where].astype(np.float32)[:, None] / 255.0
    thread = seam.thread[None, :] * (0.7 + 0.35 / 255.0 * crest[where].astype(np.float32))[:, None]
    result[where] += alpha * (thread - result[where])
    mask = ((shading != 1.0) | (body > 0)).astype(np.uint8) * 255
    return np.clip(result, 0.0, 1.0), mask


def render_seam(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, Seam]:
    """(uint8 RGB image with a random seam drawn on it, the Seam with its `mask` filled in)."""
    seam = random_seam(rng, image)
    drawn, mask = draw_seam(image, seam)
    return to_uint8(drawn), replace(seam, mask=mask)


def to_uint8(image_f: np.ndarray) -> np.ndarray:
    return np.clip(image_f * 255.0 + 0.5, 0, 255).astype(np.uint8)
