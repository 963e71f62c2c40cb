"""Write a synthetic dataset in the MVTec AD layout (see docs/architecture.md, "Contracts")."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from qc.synth.defects import DEFECTS, FABRIC_DEFECTS
from qc.synth.fabrics import FABRICS
from qc.synth.generator import generate_sample
from qc.synth.panels import generate_panel
from qc.synth.style import FabricStyle, fabric_style
from qc.synth.web_edge import add_web_edge

_SPLITS = ("train", "test", "ground_truth")
# Stream ids mixed into the seed so each split draws independent images.
_TRAIN_GOOD, _TEST_GOOD, _TEST_DEFECT = 0, 1, 2
_TRAIN_PANEL, _TEST_PANEL = 3, 4
_TRAIN_DEFECT, _TRAIN_DEFECT_PANEL = 5, 6
_STYLE = 7
_TRAIN_EDGE, _TEST_EDGE = 8, 9
# Labelled training defects share ground_truth/<type>/ with the test split's: their stems carry this
# prefix so a training mask can never overwrite (or be read as) a test image's.
TRAIN_DEFECT_PREFIX = "train_"
PANEL_SIZE_PX = (480, 640)  # what the simulated line camera sends (edge config default)


def _image_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """One generator per image, so image k does not depend on how many came before it."""
    return np.random.default_rng([seed, stream, index])


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = image[..., ::-1] if image.ndim == 3 else image  # OpenCV writes BGR
    if not cv2.imwrite(str(path), np.ascontiguousarray(pixels)):
        raise OSError(f"could not write {path}")


def write_mvtec_dataset(
    out: Path | str,
    *,
    count: int,
    seed: int,
    size_px: int = 256,
    test_count: int | None = None,
    overwrite: bool = False,
    panels: int = 0,
    train_defects: int = 0,
    fabrics: Sequence[str] | None = None,
    one_style: bool = False,
    web_edges: float = 0.0,
) -> dict:
    """Write `count` good training tiles and a labelled test split under `out`; return the counts.

    Fabrics cycle through FABRICS (or ``fabrics``, a subset: one fabric is what a factory onboards,
    so the tiles and their defects then show only it) in a fixed order so every fabric is present
    in every split; line panels draw their own fabrics whatever ``fabrics`` says. ``one_style``:
    every tile of a fabric is cut from one roll of it and its seams share one stitch and thread
    (qc/synth/style.py), as a factory's photographs of one fabric and garment style do; by default
    each tile draws its own colourway and seam look.
    test_count is the number of defect test images (default max(count // 4, len(DEFECTS))), spread
    evenly over all defect types; good test images number max(number of fabrics, test_count // 2).
    ``panels`` adds that many good whole-garment frames of the simulated line (panel on the belt)
    to train/good, and as many test frames (a third with a defect), so a model for the simulated
    station learns that the belt and panel edges are normal. About a third of the good tiles carry a
    seam (generate_sample's default), so seams are learnt as normal cloth; seam defects always sit on
    one. ``train_defects`` adds that many labelled defect images to train/<type>/ (masks in
    ground_truth/<type>/train_*_mask.png), spread evenly over the defect types, drawn from their own
    seed streams so none repeats a test image; with ``panels``, half of them are whole line frames
    (fabric defect types only: seam defects need a seam). ``web_edges``: the share of good tiles
    (train and test) drawn at the edge of a web, bed and selvage beside the cloth
    (qc/synth/web_edge.py), from a stream of their own so the other tiles are the same bytes as
    without it. Same arguments, same bytes. A non-empty `out` is refused unless overwrite=True,
    which first removes its train/, test/ and ground_truth/ folders (stale images would corrupt the
    splits).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if size_px < 16:
        raise ValueError(f"size_px must be at least 16, got {size_px}")
    defect_count = max(count // 4, len(DEFECTS)) if test_count is None else test_count
    if defect_count < 0:
        raise ValueError(f"test_count must not be negative, got {test_count}")
    if train_defects < 0:
        raise ValueError(f"train_defects must not be negative, got {train_defects}")
    if not 0.0 <= web_edges <= 1.0:
        raise ValueError(f"web_edges is a share of the good tiles, 0 to 1; got {web_edges}")
    chosen = _chosen_fabrics(fabrics)
    styles = (
        {name: fabric_style(_image_rng(seed, _STYLE, k), name, (size_px, size_px)) for k, name in enumerate(chosen)}
        if one_style else {}
    )
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; choose an empty folder or pass overwrite")
        for split in _SPLITS:
            shutil.rmtree(root / split, ignore_errors=True)
    shape = (size_px, size_px)

    for index in range(count):
        sample = generate_sample(
            _image_rng(seed, _TRAIN_GOOD, index), size_px=shape, fabric=chosen[index % len(chosen)], defect=None,
            style=styles.get(chosen[index % len(chosen)]),
        )
        image = _maybe_web_edge(sample.image, _image_rng(seed, _TRAIN_EDGE, index), web_edges)
        _write_png(root / "train" / "good" / f"{index:04d}.png", image)

    good_test_count = max(len(chosen), defect_count // 2)
    for index in range(good_test_count):
        sample = generate_sample(
            _image_rng(seed, _TEST_GOOD, index), size_px=shape, fabric=chosen[index % len(chosen)], defect=None,
            style=styles.get(chosen[index % len(chosen)]),
        )
        image = _maybe_web_edge(sample.image, _image_rng(seed, _TEST_EDGE, index), web_edges)
        _write_png(root / "test" / "good" / f"{index:04d}.png", image)

    per_type = dict.fromkeys(DEFECTS, 0)
    for index in range(defect_count):
        defect = DEFECTS[index % len(DEFECTS)]
        # Shift the fabric each round over the defect types, so no defect sticks to one fabric.
        fabric = chosen[(index + index // len(DEFECTS)) % len(chosen)]
        sample = generate_sample(
            _image_rng(seed, _TEST_DEFECT, index), size_px=shape, fabric=fabric, defect=defect, style=styles.get(fabric)
        )
        stem = f"{per_type[defect]:04d}"
        _write_png(root / "test" / defect / f"{stem}.png", sample.image)
        _write_png(root / "ground_truth" / defect / f"{stem}_mask.png", sample.mask)
        per_type[defect] += 1

    panel_test = {"good": 0, "defect": 0}
    for index in range(panels):
        sample = generate_panel(_image_rng(seed, _TRAIN_PANEL, index), size_px=PANEL_SIZE_PX, defect_probability=0.0)
        _write_png(root / "train" / "good" / f"panel_{index:04d}.png", sample.image)
    for index in range(panels):
        sample = generate_panel(_image_rng(seed, _TEST_PANEL, index), size_px=PANEL_SIZE_PX, defect_probability=1 / 3)
        kind = sample.defect_type or "good"
        _write_png(root / "test" / kind / f"panel_{index:04d}.png", sample.image)
        if sample.defect_type:
            _write_png(root / "ground_truth" / kind / f"panel_{index:04d}_mask.png", sample.mask)
        panel_test["defect" if sample.defect_type else "good"] += 1

    train_per_type = _write_train_defects(root, seed, shape, train_defects, chosen, styles, with_panels=panels > 0)

    return {
        "root": str(root),
        "seed": seed,
        "size_px": size_px,
        "fabrics": list(chosen),
        "one_style": one_style,
        "web_edges": web_edges,
        "train": {"good": count, **{name: n for name, n in train_per_type.items() if n}},
        "test": {"good": good_test_count, **{name: n for name, n in per_type.items() if n}},
        "ground_truth": {name: n for name, n in per_type.items() if n},
        "panels": {"train_good": panels, "test": panel_test},
    }


def _maybe_web_edge(image: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    return add_web_edge(rng, image) if share and rng.random() < share else image


def _chosen_fabrics(fabrics: Sequence[str] | None) -> tuple[str, ...]:
    """The fabrics a dataset's tiles cycle through: all of FABRICS, or the named ones in the order given."""
    if fabrics is None:
        return FABRICS
    chosen = tuple(dict.fromkeys(fabrics))
    if not chosen:
        raise ValueError(f"fabrics must name at least one fabric; known: {', '.join(FABRICS)}")
    unknown = [name for name in chosen if name not in FABRICS]
    if unknown:
        raise ValueError(f"unknown fabric {', '.join(map(repr, unknown))}; known: {', '.join(FABRICS)}")
    return chosen


def _write_train_defects(
    root: Path, seed: int, shape: tuple[int, int], count: int, fabrics: tuple[str, ...], styles: dict[str, FabricStyle],
    *, with_panels: bool,
) -> dict:
    """``count`` labelled defect images in train/<type>/ (half of them line frames when ``with_panels``)."""
    per_type = dict.fromkeys(DEFECTS, 0)
    panel_count = count // 2 if with_panels else 0

    def write(defect: str, image: np.ndarray, mask: np.ndarray, kind: str) -> None:
        stem = f"{TRAIN_DEFECT_PREFIX}{kind}{per_type[defect]:04d}"
        _write_png(root / "train" / defect / f"{stem}.png", image)
        _write_png(root / "ground_truth" / defect / f"{stem}_mask.png", mask)
        per_type[defect] += 1

    for index in range(count - panel_count):
        defect = DEFECTS[index % len(DEFECTS)]
        fabric = fabrics[(index + index // len(DEFECTS)) % len(fabrics)]
        sample = generate_sample(
            _image_rng(seed, _TRAIN_DEFECT, index), size_px=shape, fabric=fabric, defect=defect, style=styles.get(fabric)
        )
        write(defect, sample.image, sample.mask, "")
    for index in range(panel_count):
        defect = FABRIC_DEFECTS[index % len(FABRIC_DEFECTS)]
        sample = generate_panel(
            _image_rng(seed, _TRAIN_DEFECT_PANEL, index), size_px=PANEL_SIZE_PX, defect_probability=1.0, defect=defect
        )
        if sample.defect_type is None:  # this type found no room on this panel: skip, as the test split does
            continue
        write(sample.defect_type, sample.image, sample.mask, "panel_")
    return per_type
