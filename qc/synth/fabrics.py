"""Procedural fabric textures: woven (plain, twill, denim, stripes, checks, satin, herringbone,
printed) and weft knits (jersey, rib).

Each renderer draws its structure in float32 RGB 0..1 from yarn coordinates; `render_fabric` then
adds what a camera adds (lighting gradient, mottling, slight defocus, sensor noise). All draws come
from the caller's rng, so a texture is a pure function of the rng state.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable

import cv2
import numpy as np

FabricRenderer = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]

FABRIC_RENDERERS: dict[str, FabricRenderer] = {}


def register_fabric(name: str) -> Callable[[FabricRenderer], FabricRenderer]:
    def decorate(renderer: FabricRenderer) -> FabricRenderer:
        if name in FABRIC_RENDERERS:
            raise ValueError(f"fabric {name!r} is registered twice")
        FABRIC_RENDERERS[name] = renderer
        return renderer

    return decorate


def render_fabric(rng: np.random.Generator, name: str, size_px: tuple[int, int]) -> np.ndarray:
    """A (H, W, 3) uint8 RGB image of fabric `name` as a camera would see it."""
    if name not in FABRIC_RENDERERS:
        raise ValueError(f"unknown fabric {name!r}; known: {', '.join(FABRIC_RENDERERS)}")
    height, width = size_px
    base = FABRIC_RENDERERS[name](rng, (height, width))
    return photograph(rng, base)


def random_colour(
    rng: np.random.Generator, *, saturation: tuple[float, float] = (0.0, 0.75),
    value: tuple[float, float] = (0.3, 0.95),
) -> np.ndarray:
    hue = rng.uniform(0.0, 1.0)
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(*saturation), rng.uniform(*value))
    return np.array(rgb, dtype=np.float32)


def _yarn_coords(rng: np.random.Generator, size_px: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel grid rotated by a small angle: u runs across warp yarns, v across weft yarns.

    Real fabric is never perfectly aligned with the camera; a random phase keeps tiles from all
    starting on a yarn boundary.
    """
    height, width = size_px
    angle = np.deg2rad(rng.uniform(-4.0, 4.0))
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = (xs * cos + np.float32(rng.uniform(0, 100))) + ys * sin
    v = (np.float32(rng.uniform(0, 100)) - xs * sin) + ys * cos
    return u, v


def _streaks(rng: np.random.Generator, size_px: tuple[int, int], along_vertical: bool) -> np.ndarray:
    """Fibre hairiness: noise smeared along the yarn direction, mean 0."""
    noise = rng.standard_normal(size_px, dtype=np.float32)
    ksize = (1, 9) if along_vertical else (9, 1)
    return cv2.blur(noise, ksize) * np.float32(0.6)


def _yarn_profile(frac: np.ndarray, sharpness: float) -> np.ndarray:
    """sin(pi * frac) ** sharpness through a lookup table: a float power per pixel is slow."""
    table = (np.sin(np.pi * np.linspace(0.0, 1.0, 257)) ** sharpness).astype(np.float32)
    return table[(frac * np.float32(256.0)).astype(np.int32)]


def _per_yarn(rng: np.random.Generator, index: np.ndarray, spread: float) -> np.ndarray:
    """Per-yarn brightness factor (yarns differ slightly in thickness and dye uptake)."""
    offset = index.min()
    factors = 1.0 + spread * rng.standard_normal(int(index.max() - offset) + 1).astype(np.float32)
    return factors[index - offset]


def _woven(
    rng: np.random.Generator,
    size_px: tuple[int, int],
    *,
    warp_is_up: Callable[[np.ndarray, np.ndarray], np.ndarray],
    warp_colour: Callable[[np.ndarray], np.ndarray],
    weft_colour: Callable[[np.ndarray], np.ndarray],
    pitch_px: tuple[float, float],
) -> np.ndarray:
    """Interlaced warp (vertical) and weft (horizontal) yarns; warp_is_up(i, j) is the weave."""
    u, v = _yarn_coords(rng, size_px)
    warp_pitch, weft_pitch = pitch_px
    i_float, j_float = u / np.float32(warp_pitch), v / np.float32(weft_pitch)
    i, j = np.floor(i_float).astype(np.int64), np.floor(j_float).astype(np.int64)
    frac_u, frac_v = i_float - i, j_float - j
    sharpness = np.float32(rng.uniform(0.4, 0.9))
    # A yarn is round: bright along its centre line, dark in the gap to its neighbour, and it
    # dips where it passes under the crossing yarn.
    across_warp = _yarn_profile(frac_u, sharpness)
    across_weft = _yarn_profile(frac_v, sharpness)
    warp_shade = across_warp * (0.8 + 0.2 * np.sin(np.pi * frac_v)) * _per_yarn(rng, i, 0.05)
    weft_shade = across_weft * (0.8 + 0.2 * np.sin(np.pi * frac_u)) * _per_yarn(rng, j, 0.05)
    warp_shade = warp_shade + 0.06 * _streaks(rng, size_px, along_vertical=True)
    weft_shade = weft_shade + 0.06 * _streaks(rng, size_px, along_vertical=False)
    up = warp_is_up(i, j)
    gap_floor = np.float32(rng.uniform(0.35, 0.65))
    shade = np.where(up, warp_shade, weft_shade)
    shade = gap_floor + (1.0 - gap_floor) * shade
    colour = np.where(up[..., None], warp_colour(i), weft_colour(j))
    return (colour * shade[..., None]).astype(np.float32)


def _constant(colour: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return lambda index: colour


def _colour_sequence(rng: np.random.Generator, colours: list[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Yarn-dyed pattern: a repeating sequence of colour bands, each a few yarns wide."""
    widths = rng.integers(2, 12, size=len(colours) * 2)
    sequence = np.concatenate(
        [np.repeat(colours[k % len(colours)][None], w, axis=0) for k, w in enumerate(widths)]
    )
    return lambda index: sequence[np.mod(index, len(sequence))]


def _plain_up(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return (i + j) % 2 == 0


def _twill_up(repeat: int, floats: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda i, j: np.mod(i - j, repeat) < floats


def _near(colour: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    return np.clip(colour + rng.uniform(-spread, spread, 3).astype(np.float32), 0.0, 1.0)


@register_fabric("plain_weave")
def plain_weave(rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    pitch = rng.uniform(4.0, 10.0)
    warp = random_colour(rng)
    return _woven(
        rng, size_px, warp_is_up=_plain_up, warp_colour=_constant(warp),
        weft_colour=_constant(_near(warp, rng, 0.08)), pitch_px=(pitch, pitch * rng.uniform(0.85, 1.15)),
    )


@register_fabric("twill")
def twill(rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    pitch = rng.uniform(3.0, 8.0)
    repeat, floats = [(3, 2), (4, 2), (3, 1)][rng.integers(3)]
    warp = random_colour(rng)
    return _woven(
        rng, size_px, warp_is_up=_twill_up(repeat, floats), warp_colour=_constant(warp),
        weft_colour=_constant(_near(warp, rng, 0.15)), pitch_px=(pitch, pitch),
    )


@register_fabric("denim")
def denim(rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    pitch = rng.uniform(3.0, 6.0)
    indigo = random_colour(rng, saturation=(0.5, 0.85), value=(0.25, 0.6))
    indigo = np.array(colorsys.hsv_to_rgb(rng.uniform(0.58, 0.66), *colorsys.rgb_to_hsv(*indigo)[1:]), np.float32)
    ecru = np.array([0.85, 0.83, 0.76], np.float32) * np.float32(rng.uniform(0.85, 1.05))
    texture = _woven(
        rng, size_px, warp_is_up=_twill_up(4, 3), warp_colour=_constant(indigo),
        weft_colour=_constant(np.clip(ecru, 0, 1)), pitch_px=(pitch, pitch),
    )
    # Ring-spun warp yarn is unevenly dyed along its length: the vertical streaks of denim.
    streak = cv2.resize(
        rng.standard_normal((4, max(2, size_px[1] // 3))).astype(np.float32),
        (size_px[1], size_px[0]), interpolation=cv2.INTER_CUBIC,
    )
    return texture * (1.0 + 0.08 * streak[..., None])


@register_fabric("jersey_knit")
def jersey_knit(rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    """Face of single jersey: columns (wales) of V-shaped loops, rows (courses) of stitches."""
    u, v = _yarn_coords(rng, size_px)
    wale_pitch = rng.uniform(5.0, 11.0)
    course_pitch = wale_pitch * rng.uniform(0.6, 0.85)
    i_float, j_float = u / np.float32(wale_pitch), v / np.float32(course_pitch)
    i, j = np.floor(i_float).astype(np.int64), np.floor(j_float).astype(np.int64)
    frac_u, frac_v = i_float - i, j_float - j
    # Each loop is two slanted legs meeting at the bottom of the stitch: a V.
    leg_centre = 0.08 + 0.3 * (1.0 - frac_v)
    distance = np.abs(np.abs(frac_u - 0.5) - leg_centre)
    leg_width = np.float32(rng.uniform(0.1, 0.16))
    leg = np.exp(-((distance / leg_width) ** 2))
    shade = leg * (0.75 + 0.25 * np.sin(np.pi * frac_v)) * _per_yarn(rng, j, 0.04)
    shade = shade + 0.05 * _streaks(rng, size_px, along_vertical=True)
    gap_floor = np.float32(rng.uniform(0.3, 0.55))
    shade = gap_floor + (1.0 - gap_floor) * shade
    return (random_colour(rng) * shade[..., None]).astype(np.float32)


@register_fabric("stripes")
def stripes(rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    pitch = rng.uniform(3.0, 8.0)
    colours = [random_colour(rng) for _ in range(int(rng.integers(2, 4)))]
    banded, plain = _colour_sequence(rng, colours), _constant(colours[0])
    warp_striped = bool(rng.integers(2))
    weave = _plain_up if rng.integers(2) else _twill_up(3, 2)
    return _woven(
        rng, size_px, warp_is_up=weave,
        warp_colour=banded if warp_striped else plain,
        weft_colour=plain if warp_striped else banded, pitch_px=(pitch, pitch),
    )


@register_fabric("checks")
def checks(rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    pitch = rng.uniform(3.0, 7.0)
    colours = [random_colour(rng) for _ in range(int(rng.integers(2, 4)))]
    sequence = _colour_sequence(rng, colours)
    weave = _plain_up if rng.integers(2) else _twill_up(4, 2)
    return _woven(
        rng, size_px, warp_is_up=weave, warp_colour=sequence, weft_colour=sequence,
        pitch_px=(pitch, pitch),
    )


def _satin_up(repeat: int, step: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Warp-faced satin: one binding point per repeat, scattered by the move number."""
    return lambda i, j: np.mod(i * step - j, repeat) != 0


@register_fabric("satin")
def satin(rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    pitch = rng.uniform(2.5, 5.0)
    repeat, step = [(5, 2), (5, 3), (8, 3)][rng.integers(3)]
    warp = random_colour(rng, saturation=(0.1, 0.8), value=(0.35, 0.95))
    texture = _woven(
        rng, size_px, warp_is_up=_satin_up(repeat, step), warp_colour=_constant(warp),
        weft_colour=_constant(_near(warp, rng, 0.1)), pitch_px=(pitch, pitch * rng.uniform(1.5, 3.0)),
    )
    # Long smooth floats reflect: a broad sheen band across the piece.
    height, width = size_px
    ys, xs = np.indices(size_px, dtype=np.float32)
    angle = rng.uniform(0, np.pi)
    across = xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle))
    centre, spread = rng.uniform(0, max(height, width)), rng.uniform(0.15, 0.5) * max(height, width)
    sheen = np.float32(rng.uniform(0.15, 0.45)) * np.exp(-(((across - centre) / spread) ** 2))
    return texture * (1.0 + sheen[..., None])


@register_fabric("herringbone")
def herringbone(rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    """A twill whose diagonal turns back every few warp yarns: the zigzag of tweed and suiting."""
    pitch = rng.uniform(2.5, 5.0)
    repeat, floats = [(4, 2), (3, 2)][rng.integers(2)]
    block = int(rng.integers(4, 9)) * repeat

    def up(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        turned = np.mod(i // block, 2) == 1
        return np.where(turned, np.mod(i + j, repeat) < floats, np.mod(i - j, repeat) < floats)

    warp = random_colour(rng, saturation=(0.0, 0.4), value=(0.3, 0.85))
    weft = np.clip(warp * np.float32(rng.uniform(0.45, 0.75)), 0, 1) if rng.integers(2) else _near(warp, rng, 0.3)
    return _woven(rng, size_px, warp_is_up=up, warp_colour=_constant(warp), weft_colour=_constant(weft),
                  pitch_px=(pitch, pitch))


@register_fabric("rib_knit")
def rib_knit(rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    """1x1 or 2x2 rib: raised columns of face loops beside recessed columns of back loops."""
    u, v = _yarn_coords(rng, size_px)
    wale_pitch = rng.uniform(4.0, 8.0)
    course_pitch = wale_pitch * rng.uniform(0.6, 0.85)
    rib = int(rng.integers(1, 3))
    i_float, j_float = u / np.float32(wale_pitch), v / np.float32(course_pitch)
    i, j = np.floor(i_float).astype(np.int64), np.floor(j_float).astype(np.int64)
    frac_u, frac_v = i_float - i, j_float - j
    leg_centre = 0.08 + 0.3 * (1.0 - frac_v)
    face = np.exp(-((np.abs(np.abs(frac_u - 0.5) - leg_centre) / np.float32(0.14)) ** 2))
    face = face * (0.75 + 0.25 * np.sin(np.pi * frac_v))
    # Back loops show as horizontal bumps, and sit in the shadow of the face columns.
    back = np.float32(0.55) * np.sin(np.pi * frac_v) ** 2 * np.sin(np.pi * frac_u)
    shade = np.where(np.mod(i // rib, 2) == 0, face, back) * _per_yarn(rng, j, 0.04)
    shade = shade + 0.05 * _streaks(rng, size_px, along_vertical=True)
    gap_floor = np.float32(rng.uniform(0.25, 0.45))
    shade = gap_floor + (1.0 - gap_floor) * shade
    return (random_colour(rng) * shade[..., None]).astype(np.float32)


def _motif(rng: np.random.Generator, canvas: np.ndarray, kind: str, centre: tuple[float, float],
           size: float, ink: int) -> None:
    x, y = centre
    if kind == "dots":
        cv2.circle(canvas, (int(x * 8), int(y * 8)), int(size * 0.45 * 8), ink, -1, cv2.LINE_8, 3)
    elif kind == "floral":
        petals, turn = int(rng.integers(4, 7)), rng.uniform(0, 2 * np.pi)
        for k in range(petals):
            a = turn + 2 * np.pi * k / petals
            petal = (int((x + 0.35 * size * np.cos(a)) * 8), int((y + 0.35 * size * np.sin(a)) * 8))
            cv2.ellipse(canvas, petal, (int(size * 0.3 * 8), int(size * 0.15 * 8) + 4), np.degrees(a), 0, 360,
                        ink, -1, cv2.LINE_8, 3)
        cv2.circle(canvas, (int(x * 8), int(y * 8)), int(size * 0.14 * 8) + 4, ink % 3 + 1, -1, cv2.LINE_8, 3)
    else:  # geometric: diamonds, squares, triangles
        sides = int(rng.choice([3, 4, 4, 6]))
        angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(sides) / sides
        points = np.stack([x + 0.5 * size * np.cos(angles), y + 0.5 * size * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.round(points * 8).astype(np.int32)], ink, cv2.LINE_8, 3)


@register_fabric("printed")
def printed(rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    """A print in 2-4 colours (florals, dots or geometric motifs) over a plain or twill ground."""
    height, width = size_px
    pitch = rng.uniform(2.5, 6.0)
    white = np.ones(3, np.float32)
    weave = _plain_up if rng.integers(2) else _twill_up(3, 2)
    shade = _woven(rng, size_px, warp_is_up=weave, warp_colour=_constant(white), weft_colour=_constant(white),
                   pitch_px=(pitch, pitch))[..., 0]
    palette = np.stack([random_colour(rng, saturation=(0.0, 0.4), value=(0.6, 0.97))]
                       + [random_colour(rng, saturation=(0.3, 0.9), value=(0.2, 0.85))
                          for _ in range(int(rng.integers(1, 4)))])
    kind = ("dots", "floral", "geometric")[rng.integers(3)]
    canvas = np.zeros(size_px, np.uint8)
    # Motifs on a jittered repeat grid, as a printing screen or roller lays them down.
    spacing = rng.uniform(18.0, 48.0)
    size = spacing * rng.uniform(0.35, 0.7)
    stagger = rng.uniform(0, spacing)
    for row, y in enumerate(np.arange(-spacing, height + spacing, spacing)):
        for x in np.arange(-spacing, width + spacing, spacing) + (stagger if row % 2 else 0.0):
            ink = int(rng.integers(1, len(palette)))
            jitter = rng.normal(0, spacing * 0.06, 2)
            _motif(rng, canvas, kind, (x + jitter[0], y + jitter[1]), size, ink)
    canvas = np.minimum(canvas, len(palette) - 1)
    colour = palette[canvas]
    # Ink bleeds a little into the yarns at the motif edges.
    colour = cv2.GaussianBlur(colour, (0, 0), rng.uniform(0.4, 1.0))
    return colour * shade[..., None]


def photograph(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """What a camera makes of a renderer's float RGB cloth: uint8 RGB with its own lighting, focus and noise."""
    height, width = base.shape[:2]
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    gradient = 1.0 + rng.uniform(-0.25, 0.25) * xs + rng.uniform(-0.25, 0.25) * ys
    # Low-frequency mottling: uneven dyeing and lighting that no real fabric is free of.
    mottle = cv2.resize(
        rng.standard_normal((6, 6)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    image = base * (gradient * (1.0 + 0.03 * mottle))[..., None]
    image = cv2.GaussianBlur(image, (0, 0), sigmaX=rng.uniform(0.3, 1.0))
    noise_sigma = rng.uniform(0.5, 3.0) / 255.0
    image += np.float32(noise_sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


FABRICS: tuple[str, ...] = tuple(FABRIC_RENDERERS)
