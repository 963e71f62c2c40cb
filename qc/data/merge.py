"""``qc data merge``: the training images of several datasets as one, to train one model on many
fabrics (the shipped default model learns from synthetic fabric and the real dev fabrics).

Only ``train/`` is taken from each source, never ``test/``: a merged dataset must not leak the
held-out images its sources are evaluated on. That is ``train/good`` and any labelled training
defects, ``train/<type>/`` with their masks ``ground_truth/<type>/<stem>_mask.png`` (a defect
without a mask stays an image-label-only defect, as in its source). Files are linked, not copied
(the AITEX strips are large and must not be duplicated), under names prefixed with their source, so
two sources with an ``0001.png`` each stay apart.
"""

from __future__ import annotations

import os
from pathlib import Path

from qc.data.records import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def merge_datasets(sources: list[Path], out: Path, *, copy: bool = False) -> dict:
    """Link (or copy) every source's ``train/`` images (and training defects' masks) into ``out``; return counts."""
    if not sources:
        raise DatasetError("merge needs at least one source dataset")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} exists and is not empty: merge writes a new dataset")
    plan: list[tuple[Path, Path]] = []
    counts: dict[str, int] = {}
    defect_count = 0
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
        plan += [(p, Path("train", "good", f"{prefix}__{p.name}")) for p in images]
        counts[str(source)] = len(images)
        defects = _training_defects(source, prefix)
        plan += defects
        defect_count += sum(1 for _, target in defects if target.parts[0] == "train")
    for path, target in plan:
        (out / target).parent.mkdir(parents=True, exist_ok=True)
        if copy:
            (out / target).write_bytes(path.read_bytes())
        else:
            os.symlink(path.resolve(), out / target)
    train_good = sum(counts.values())
    return {"out": str(out), "train_good": train_good, "train_defects": defect_count, "sources": counts, "linked": not copy}


def _training_defects(source: Path, prefix: str) -> list[tuple[Path, Path]]:
    """(file, place in the merged dataset) for ``train/<type>/*`` and each one's mask, if it has one."""
    plan = []
    for folder in sorted(p for p in (source / "train").iterdir() if p.is_dir() and p.name != "good"):
        for image in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            name = f"{prefix}__{image.name}"
            plan.append((image, Path("train", folder.name, name)))
            mask = source / "ground_truth" / folder.name / f"{image.stem}_mask.png"
            if mask.is_file():
                plan.append((mask, Path("ground_truth", folder.name, f"{Path(name).stem}_mask.png")))
    return plan
