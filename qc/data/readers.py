"""Readers for each on-disk layout, and detection of which one a folder holds.

Readers only list files and their labels; opening images is left to validation and training, so
listing a 160-strip dataset is instant and a broken file is reported by name where it is opened.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

from qc.data.records import Dataset, DatasetError, ImageRecord
from qc.imageio import IMAGE_SUFFIXES

LAYOUTS: dict[str, Callable[[Path], Dataset]] = {}


def register_layout(name: str):
    def wrap(fn: Callable[[Path], Dataset]) -> Callable[[Path], Dataset]:
        LAYOUTS[name] = fn
        return fn

    return wrap


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def slug(name: str) -> str:
    """'Broken end' -> 'broken_end': defect names as folder names."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_") or "defect"


@register_layout("mvtec")
def read_mvtec(root: Path) -> Dataset:
    """<root>/{train,val,test}/<good|defect_type>/*.png, masks in ground_truth/<type>/<stem>_mask.png."""
    dataset = Dataset(root=root, layout="mvtec")
    for split in ("train", "val", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for kind_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            kind = kind_dir.name
            for path in _images(kind_dir):
                if kind == "good":
                    dataset.records.append(ImageRecord(path, split, "good"))
                    continue
                mask = root / "ground_truth" / kind / f"{path.stem}_mask.png"
                masks = (mask,) if mask.exists() else ()
                dataset.records.append(ImageRecord(path, split, "defect", kind, masks))
    return dataset


_AITEX_NAME = re.compile(r"^(?P<id>\d{4})_(?P<code>\d{3})_(?P<fabric>\d{2})$")
# Defect names of the AITEX database (Silvestre-Blanes et al., 2019), for strips without a manifest.
AITEX_DEFECT_NAMES = {
    2: "Broken end", 6: "Broken yarn", 10: "Broken pick", 16: "Weft curling", 19: "Fuzzyball",
    22: "Cut selvage", 23: "Crease", 25: "Warp ball", 27: "Knots", 29: "Contamination",
    30: "Nep", 36: "Weft crack",
}


@register_layout("aitex")
def read_aitex(root: Path) -> Dataset:
    """NoDefect_images/<roll>/NNNN_000_FF.png, Defect_images/NNNN_DDD_FF.png, Mask_images/*_mask*.png.

    Every strip lands in ``test``: the AITEX folder has no split of its own; ``qc data convert``
    makes the protocol's split. manifest.csv is used for defect names where present.
    """
    names: dict[str, str] = {}
    manifest = root / "manifest.csv"
    if manifest.is_file():
        with open(manifest, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("defect_name"):
                    names[Path(row["path"]).stem] = row["defect_name"].strip()
    dataset = Dataset(root=root, layout="aitex")
    good_dir, defect_dir, mask_dir = root / "NoDefect_images", root / "Defect_images", root / "Mask_images"
    for path in sorted(good_dir.rglob("*")) if good_dir.is_dir() else []:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            match = _AITEX_NAME.match(path.stem)
            fabric = match["fabric"] if match else None
            dataset.records.append(ImageRecord(path, "test", "good", fabric=fabric))
    for path in _images(defect_dir) if defect_dir.is_dir() else []:
        match = _AITEX_NAME.match(path.stem)
        if not match:
            raise DatasetError(f"{path}: AITEX defect file names are NNNN_DDD_FF.png")
        code = int(match["code"])
        name = names.get(path.stem) or AITEX_DEFECT_NAMES.get(code, f"defect {code:03d}")
        masks = tuple(sorted(mask_dir.glob(f"{path.stem}_mask*.png"))) if mask_dir.is_dir() else ()
        dataset.records.append(
            ImageRecord(path, "test", "defect", slug(name), masks, fabric=match["fabric"])
        )
    return dataset


@register_layout("manifest")
def read_manifest(csv_path: Path) -> Dataset:
    """A CSV with columns path, label (good/defect) and optionally split, defect_type, mask(s)."""
    root = csv_path.parent
    dataset = Dataset(root=csv_path, layout="manifest")
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise DatasetError(f"{csv_path}: a manifest needs at least the columns path,label")
        for line, row in enumerate(reader, start=2):
            label = (row.get("label") or "").strip().lower()
            if label not in ("good", "defect"):
                raise DatasetError(f"{csv_path}:{line}: label must be good or defect, not {label!r}")
            split = (row.get("split") or "test").strip().lower()
            if split not in ("train", "val", "test"):
                raise DatasetError(f"{csv_path}:{line}: split must be train, val or test")
            mask_field = row.get("masks") or row.get("mask") or row.get("mask_path") or ""
            masks = tuple(root / m for m in mask_field.split(";") if m.strip())
            kind = row.get("defect_type") or row.get("defect_name") or ""
            dataset.records.append(
                ImageRecord(
                    root / row["path"].strip(),
                    split,  # type: ignore[arg-type]
                    label,  # type: ignore[arg-type]
                    slug(kind) if label == "defect" else None,
                    masks,
                    fabric=(row.get("fabric_code") or row.get("fabric") or None),
                )
            )
    return dataset


@register_layout("folder")
def read_folder(root: Path) -> Dataset:
    """A plain folder of good images: all of them are training images."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return Dataset(root=root, layout="folder", records=[ImageRecord(p, "train", "good") for p in files])


def detect_layout(path: Path) -> str:
    if path.is_file() and path.suffix.lower() == ".csv":
        return "manifest"
    if not path.is_dir():
        raise DatasetError(f"{path}: no such dataset folder or manifest file")
    if (path / "Defect_images").is_dir() or (path / "NoDefect_images").is_dir():
        return "aitex"
    if any((path / s).is_dir() for s in ("train", "test")):
        return "mvtec"
    return "folder"


def open_dataset(path: str | Path, layout: str | None = None) -> Dataset:
    """List a dataset's records; ``layout`` None detects it. An empty dataset is an error."""
    path = Path(path)
    layout = layout or detect_layout(path)
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset")
    dataset = LAYOUTS[layout](path)
    if not dataset.records:
        raise DatasetError(f"{path}: no images found for the {layout} layout")
    return dataset
