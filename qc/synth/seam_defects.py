"""Seam defects: faults of the sewing, drawn on a seam, with an exact mask of the fault only.

Each renderer takes the cloth without the seam, the Seam and the rng, and returns the cloth with the
good seam and with the faulty one (float32 RGB 0..1) plus the region the fault may touch. The mask
is the part of that region where the two pictures visibly differ, so it marks the fault and never
the seam itself; outside the mask's 2 px soft edge the result equals the good seam's picture.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from qc.synth.blending import _blend, _log_uniform
from qc.synth.seams import _SCALE, _SHIFT, Seam, draw_seam, random_seam, to_uint8

# (cloth, seam, rng) -> ((good picture, seam mask), faulty picture, region the fault may touch)
SeamDefectRenderer = Callable[[np.ndarray, Seam, np.random.Generator], tuple[tuple, np.ndarray, np.ndarray]]

SEAM_DEFECT_RENDERERS: dict[str, SeamDefectRenderer] = {}
VISIBLE_STEP = 0.04  # about 10 grey levels: smaller differences are not part of the fault
_TRIES = 6


def register_seam_defect(name: str) -> Callable[[SeamDefectRenderer], SeamDefectRenderer]:
    def decorate(renderer: SeamDefectRenderer) -> SeamDefectRenderer:
        if name in SEAM_DEFECT_RENDERERS:
            raise ValueError(f"seam defect {name!r} is registered twice")
        SEAM_DEFECT_RENDERERS[name] = renderer
        return renderer

    return decorate


def apply_seam_defect(
    name: str, image: np.ndarray, rng: np.random.Generator, seam: Seam | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(image with a faulty seam, mask of the fault). `image` is the cloth before sewing.

    Without a seam one is drawn from the rng. Outside the mask's soft edge the result equals
    `draw_seam(image, seam)`.
    """
    faulty, mask, _ = seam_defect_with_seam_mask(name, image, rng, random_seam(rng, image) if seam is None else seam)
    return faulty, mask


def seam_defect_with_seam_mask(
    name: str, image: np.ndarray, rng: np.random.Generator, seam: Seam
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """apply_seam_defect plus the good seam's own mask, without drawing the seam once more."""
    for _ in range(_TRIES):  # a fault on a very short seam or in tonal thread can vanish; draw again
        (good, seam_mask), bad, region = SEAM_DEFECT_RENDERERS[name](image, seam, rng)
        visible = (np.abs(bad - good).max(axis=2) > VISIBLE_STEP) & (region > 0)
        shape = cv2.morphologyEx(visible.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        shape &= region > 0
        if np.count_nonzero(shape) >= 4:
            return (*_blend(to_uint8(good), shape, bad), seam_mask)
    raise RuntimeError(f"could not draw a visible {name} on this seam")


def _normals(path: np.ndarray) -> np.ndarray:
    tangent = np.gradient(path, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-6)
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def _tube(size_px: tuple[int, int], points: np.ndarray, radius: float) -> np.ndarray:
    region = np.zeros(size_px, np.uint8)
    cv2.polylines(region, [np.round(points * _SCALE).astype(np.int32)], False, 255,
                  max(int(round(2 * radius + 1)), 1), cv2.LINE_8, _SHIFT)
    return region


def _stitch_span(rng: np.random.Generator, seam: Seam, low: int, high: int) -> tuple[int, int, int, int]:
    """First and last stitch of a run of low..high stitches, and the path indices they cover."""
    total = max(seam.stitch_count, 1)
    count = int(rng.integers(low, high + 1))
    count = min(count, max(total - 1, 1))
    first = int(rng.integers(0, max(total - count, 0) + 1))
    last = first + count - 1
    a = int(first * seam.pitch_px)
    b = min(int(last * seam.pitch_px + seam.stitch_px), len(seam.path) - 1)
    return first, last, a, b


def _all_but(seam: Seam, first: int, last: int) -> set[int]:
    return set(range(seam.stitch_count)) - set(range(first, last + 1))


@register_seam_defect("skipped_stitch")
def skipped_stitch(image: np.ndarray, seam: Seam, rng: np.random.Generator):
    """The hook missed the loop: the needle thread floats over two or three stitch lengths."""
    first, last, a, b = _stitch_span(rng, seam, 2, 3)
    good = draw_seam(image, seam)
    t = np.linspace(0.0, 1.0, b - a + 1)[:, None]
    # A float is slack: it bows a little off the stitch line.
    bow = rng.uniform(0.8, 2.5) * (1 if rng.integers(2) else -1)
    float_thread = seam.path[a: b + 1] + _normals(seam.path)[a: b + 1] * bow * np.sin(np.pi * t)
    bad, _ = draw_seam(image, seam, keep=_all_but(seam, first, last), loose_threads=[float_thread])
    region = _tube(image.shape[:2], seam.path[max(a - 2, 0): b + 3], seam.thread_px + 4)
    return good, bad, region


def _tail(rng: np.random.Generator, start: np.ndarray, heading: float) -> np.ndarray:
    """A loose, curling thread end."""
    steps = int(rng.integers(5, 16))
    headings = heading + np.cumsum(rng.normal(0.0, 0.35, steps))
    return start + np.vstack([[0.0, 0.0], np.cumsum(np.stack([np.cos(headings), np.sin(headings)], 1) * 1.3, 0)])


@register_seam_defect("broken_stitch")
def broken_stitch(image: np.ndarray, seam: Seam, rng: np.random.Generator):
    """The thread broke: a run of stitches is gone and the cut ends curl off the line."""
    first, last, a, b = _stitch_span(rng, seam, 2, 7)
    good = draw_seam(image, seam)
    direction = seam.path[b] - seam.path[a]
    along = float(np.arctan2(direction[1], direction[0]))
    tails = [_tail(rng, seam.path[a], along + rng.uniform(-0.9, 0.9))]
    if rng.random() < 0.7:
        tails.append(_tail(rng, seam.path[b], along + np.pi + rng.uniform(-0.9, 0.9)))
    bad, _ = draw_seam(image, seam, keep=_all_but(seam, first, last), loose_threads=tails)
    region = _tube(image.shape[:2], seam.path[max(a - 2, 0): b + 3], seam.thread_px + 4)
    for tail in tails:
        region |= _tube(image.shape[:2], tail, seam.thread_px + 2)
    return good, bad, region


@register_seam_defect("open_seam")
def open_seam(image: np.ndarray, seam: Seam, rng: np.random.Generator):
    """The seam has come apart: the two plies gape along the line, a few threads still bridge it."""
    first, last, a, b = _stitch_span(rng, seam, 3, 10)
    size = image.shape[:2]
    good = draw_seam(image, seam)
    bad, _ = draw_seam(image, seam, keep=_all_but(seam, first, last))
    span, normals = seam.path[a: b + 1], _normals(seam.path)[a: b + 1]
    t = np.linspace(0.0, 1.0, len(span))[:, None]
    half_width = rng.uniform(1.2, 5.0) * np.sin(np.pi * t) ** 0.6 + 0.5
    lens = np.concatenate([span + normals * half_width, (span - normals * half_width)[::-1]])
    gap = np.zeros(size, np.uint8)
    cv2.fillPoly(gap, [np.round(lens * _SCALE).astype(np.int32)], 255, cv2.LINE_8, _SHIFT)
    rim = cv2.dilate(gap, np.ones((3, 3), np.uint8)) & ~gap
    inside = gap > 0
    cloth = float(good[0][inside].mean()) if inside.any() else 0.5
    # Through the gap: the dark belt or table, or a light backing where the cloth is dark.
    beneath = rng.uniform(0.03, 0.15) if cloth > 0.3 else rng.uniform(0.7, 0.9)
    bad[inside] = beneath + 0.01 * rng.standard_normal((int(inside.sum()), 3)).astype(np.float32)
    bad[rim > 0] *= np.float32(rng.uniform(0.55, 0.8))  # the raw edges curl down into shadow
    for _ in range(int(rng.integers(0, 4))):
        i = int(rng.integers(0, len(span)))
        reach = half_width[i, 0] + 1.5
        ends = [span[i] + normals[i] * reach, span[i] - normals[i] * reach]
        cv2.line(bad, *[tuple(int(round(c * _SCALE)) for c in e) for e in ends],
                 tuple(float(c) for c in seam.thread), 1, cv2.LINE_AA, _SHIFT)
    region = _tube(size, seam.path[max(a - 2, 0): b + 3], seam.thread_px + 3)
    region |= cv2.dilate(gap, np.ones((5, 5), np.uint8))
    return good, bad, region


@register_seam_defect("puckering")
def puckering(image: np.ndarray, seam: Seam, rng: np.random.Generator):
    """Uneven feed gathered the cloth: ripples across a stretch of the seam, which wavers with them."""
    size = image.shape[:2]
    length = min(int(_log_uniform(rng, 30.0, 140.0)), int(0.6 * len(seam.path)))
    a = int(rng.integers(0, len(seam.path) - length))
    span = seam.path[a: a + length]
    reach = rng.uniform(8.0, 28.0)
    good = draw_seam(image, seam)
    line = np.full(size, 255, np.uint8)
    cv2.polylines(line, [np.round(span * _SCALE).astype(np.int32)], False, 0, 1, cv2.LINE_8, _SHIFT)
    distance = cv2.distanceTransform(line, cv2.DIST_L2, 3)
    ys, xs = np.indices(size, dtype=np.float32)
    chord = span[-1] - span[0]
    tangent = chord / max(float(np.linalg.norm(chord)), 1e-6)
    centre = span.mean(axis=0)
    along = (xs - centre[0]) * tangent[0] + (ys - centre[1]) * tangent[1]
    across = -(xs - centre[0]) * tangent[1] + (ys - centre[1]) * tangent[0]
    ends = np.clip(1.0 - (np.abs(along) / (length / 2 + 1)) ** 4, 0.0, 1.0)
    envelope = (np.clip(1.0 - distance / reach, 0.0, 1.0) ** 1.5 * ends).astype(np.float32)
    wavelength = rng.uniform(5.0, 14.0)
    phase = 2 * np.pi * (along + rng.uniform(-0.6, 0.6) * across) / wavelength + rng.uniform(0, 2 * np.pi)
    shift = np.float32(rng.uniform(0.8, 2.5)) * np.sin(phase).astype(np.float32) * envelope
    map_x = xs + shift * np.float32(tangent[0])
    map_y = ys + shift * np.float32(tangent[1])
    bad = cv2.remap(good[0], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    ripple = 1.0 + np.float32(rng.uniform(0.05, 0.22)) * np.cos(phase).astype(np.float32) * envelope
    bad = np.clip(bad * ripple[..., None], 0.0, 1.0)
    region = (envelope > 0.02).astype(np.uint8) * 255
    return good, bad, region


@register_seam_defect("crooked_seam")
def crooked_seam(image: np.ndarray, seam: Seam, rng: np.random.Generator):
    """The stitch line wanders off its course for a stretch and comes back."""
    length = min(int(_log_uniform(rng, 35.0, 160.0)), int(0.6 * len(seam.path)))
    a = int(rng.integers(0, len(seam.path) - length))
    offset = np.zeros(len(seam.path), np.float32)
    offset[a: a + length] = rng.uniform(2.0, 8.0) * np.sin(np.linspace(0.0, np.pi, length)) ** 2
    offset *= 1 if rng.integers(2) else -1
    bent = seam.path + _normals(seam.path) * offset[:, None]
    good = draw_seam(image, seam)
    bad, _ = draw_seam(image, seam, path=bent)
    reach = abs(float(offset[a: a + length].max(initial=0) or offset[a: a + length].min(initial=0)))
    radius = 3.0 * seam.fold_px + reach + seam.thread_px
    region = _tube(image.shape[:2], seam.path[max(a - 3, 0): a + length + 3], radius)
    return good, bad, region


SEAM_DEFECTS: tuple[str, ...] = tuple(SEAM_DEFECT_RENDERERS)
