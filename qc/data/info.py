"""``qc data info``: what a dataset holds, and what is wrong with it."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from qc.data.readers import open_dataset
from qc.data.validate import check_dataset


def dataset_info(path: str | Path, *, layout: str | None = None) -> dict[str, Any]:
    """A JSON-ready summary. Never raises for bad files: they are listed under ``problems``."""
    dataset = open_dataset(path, layout)
    _, checked, problems = check_dataset(dataset, skip_bad=True)
    coverage: dict[str, list[float]] = defaultdict(list)
    for item in checked:
        if item.mask_fraction is not None:
            coverage[item.record.defect_type or "good"].append(item.mask_fraction)
    defects = dataset.select(label="defect")
    return {
        "root": str(dataset.root),
        "layout": dataset.layout,
        "images": len(dataset.records),
        "good": len(dataset.select(label="good")),
        "defect": len(defects),
        "splits": dataset.counts(),
        "fabrics": dataset.fabrics(),
        "sizes": {f"{w}x{h}": n for (w, h), n in Counter((c.width, c.height) for c in checked).most_common()},
        "channels": {str(k): n for k, n in sorted(Counter(c.channels for c in checked).items())},
        "defects_without_mask": sum(1 for r in defects if not r.masks),
        "mask_coverage": {
            kind: {"images": len(v), "mean_fraction": sum(v) / len(v), "max_fraction": max(v)}
            for kind, v in sorted(coverage.items())
        },
        "problems": [str(p) for p in problems],
    }


def format_info(info: dict[str, Any]) -> str:
    lines = [
        f"{info['root']} ({info['layout']} layout): {info['images']} images, "
        f"{info['good']} good, {info['defect']} defect",
    ]
    for split, kinds in info["splits"].items():
        lines.append(f"  {split}: " + ", ".join(f"{k} {n}" for k, n in kinds.items()))
    if info["fabrics"]:
        lines.append("  fabric  good  defect")
        for fabric, row in info["fabrics"].items():
            lines.append(f"  {fabric:>6}  {row['good']:>4}  {row['defect']:>6}")
    lines.append("  sizes: " + ", ".join(f"{s} ({n})" for s, n in info["sizes"].items()))
    lines.append("  stored channels: " + ", ".join(f"{c}: {n}" for c, n in info["channels"].items()))
    for kind, cov in info["mask_coverage"].items():
        lines.append(
            f"  masks {kind}: {cov['images']} images, mean {cov['mean_fraction']:.4%} of pixels"
        )
    if info["defects_without_mask"]:
        lines.append(f"  defect images without a mask: {info['defects_without_mask']}")
    lines.append(f"  problems: {len(info['problems'])}")
    lines.extend(f"    {p}" for p in info["problems"])
    return "\n".join(lines)
