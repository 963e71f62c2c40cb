"""``qc data tile``: cut a dataset's large images into tiles, masks kept aligned, padding skipped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from qc.data.blank import is_blank
from qc.data.readers import open_dataset
from qc.data.records import DatasetError
from qc.data.validate import check_dataset
from qc.imageio import read_image, read_mask, write_image_atomic
from qc.tiling import TileGrid


def tile_dataset(
    root: str | Path, out: str | Path, *, tile: int = 256, overlap: int = 32, skip_bad: bool = False
) -> dict:
    """Write ``out`` in MVTec layout with ``<stem>_y<Y>_x<X>.png`` tiles.

    A tile of a defect image whose mask has no defect pixel there is good fabric and goes to
    ``<split>/good``; images without any mask keep their label on every tile (nothing to tell by).
    """
    root, out = Path(root), Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out}: output folder exists and is not empty")
    dataset, _, problems = check_dataset(open_dataset(root), skip_bad=skip_bad)
    written: Counter[str] = Counter()
    skipped_blank = 0
    for record in dataset.records:
        image = read_image(record.path)
        mask = None
        if record.masks:
            mask = np.maximum.reduce([read_mask(m) for m in record.masks])
        grid = TileGrid.for_image(image.shape[0], image.shape[1], tile, overlap)
        image_tiles = grid.cut(image)
        mask_tiles = grid.cut(mask) if mask is not None else [None] * len(image_tiles)
        for (y, x), image_tile, mask_tile in zip(grid.boxes, image_tiles, mask_tiles):
            has_defect = mask_tile is not None and bool(mask_tile.any())
            if not has_defect and is_blank(image_tile):
                skipped_blank += 1
                continue
            kind = record.defect_type or "good"
            if record.label == "defect" and mask_tile is not None and not has_defect:
                kind = "good"
            name = f"{record.path.stem}_y{y}_x{x}"
            write_image_atomic(out / record.split / kind / f"{name}.png", image_tile)
            if has_defect:
                write_image_atomic(out / "ground_truth" / kind / f"{name}_mask.png", mask_tile)
            written[f"{record.split}/{kind}"] += 1
    return {
        "tiles": dict(sorted(written.items())),
        "skipped_blank": skipped_blank,
        "skipped_bad": [str(p) for p in problems],
    }
