"""What a dataset is, independent of its layout on disk: a list of image records."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Split = Literal["train", "val", "test"]
Label = Literal["good", "defect"]


class DatasetError(Exception):
    """A dataset that cannot be used as it is; the message names the file or folder."""


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    split: Split
    label: Label
    defect_type: str | None = None  # None for good images
    masks: tuple[Path, ...] = ()  # several masks of one image are united
    fabric: str | None = None


@dataclass
class Dataset:
    root: Path
    layout: str
    records: list[ImageRecord] = field(default_factory=list)

    def select(self, *, split: str | None = None, label: str | None = None) -> list[ImageRecord]:
        return [
            r
            for r in self.records
            if (split is None or r.split == split) and (label is None or r.label == label)
        ]

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {"good": n, "<defect_type>": n}} in a stable order."""
        out: dict[str, dict[str, int]] = {}
        for (split, kind), n in sorted(
            Counter((r.split, r.defect_type or "good") for r in self.records).items()
        ):
            out.setdefault(split, {})[kind] = n
        return out

    def fabrics(self) -> dict[str, dict[str, int]]:
        """{fabric: {"good": n, "defect": n}} where records know their fabric (AITEX)."""
        out: dict[str, dict[str, int]] = {}
        for r in self.records:
            if r.fabric is not None:
                row = out.setdefault(r.fabric, {"good": 0, "defect": 0})
                row[r.label] += 1
        return dict(sorted(out.items()))
