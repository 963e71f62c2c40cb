"""``qc data merge``: the good training images of several datasets as one, to train one model on
many fabrics (the shipped default model learns from synthetic fabric and the real dev fabrics).

Only ``train/good`` is taken from each source, never ``test/``: a merged dataset must not leak the
held-out images its sources are evaluated on. Files are linked, not copied (the AITEX strips are
large and must not be duplicated), under names prefixed with their source, so two sources with an
``0001.png`` each stay apart.
"""

from __future__ import annotations

import os
from pathlib import Path

from qc.data.records import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def merge_datasets(sources: list[Path], out: Path, *, copy: bool = False) -> dict:
    """Link (or copy) every source's ``train/good`` images into ``out/train/good``; return counts."""
    if not sources:
        raise DatasetError("merge needs at least one source dataset")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} exists and is not empty: merge writes a new dataset")
    plan: list[tuple[Path, str]] = []
    counts: dict[str, int] = {}
    prefixes: set[str] = set()
    for source in map(Path, sources):
        folder = source / "train" / "good"
        if not folder.is_dir():
            raise DatasetError(f"{source} has no train/good folder: merge takes MVTec-layout datasets")
        prefix = source.resolve().name
        if prefix in prefixes:  # two sources of the same name: tell them apart by position
            prefix = f"{prefix}-{len(prefixes)}"
        prefixes.add(prefix)
        images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DatasetError(f"{folder} holds no images")
        plan += [(p, f"{prefix}__{p.name}") for p in images]
        counts[str(source)] = len(images)
    target = out / "train" / "good"
    target.mkdir(parents=True)
    for path, name in plan:
        if copy:
            (target / name).write_bytes(path.read_bytes())
        else:
            os.symlink(path.resolve(), target / name)
    return {"out": str(out), "train_good": len(plan), "sources": counts, "linked": not copy}
