"""``qc predict``: run an exported model on image files and write one JSON line per image."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qc.decision import decide
from qc.imageio import IMAGE_SUFFIXES, ImageReadError, read_image, write_image_atomic
from qc.inspection_model import InspectionModel
from qc.render import overlay


@dataclass(frozen=True)
class PredictSummary:
    processed: int
    failed: int  # files that could not be read: reported, never silently dropped
    results_path: Path


def expand_inputs(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given; folders expanded to their images (sorted, recursive)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path  # a missing file is reported by the reader, with its name


def _unique_stem(path: Path, taken: set[str]) -> str:
    stem, n = path.stem, 1
    while stem in taken:  # same file name in two folders: keep both outputs
        n += 1
        stem = f"{path.stem}_{n}"
    taken.add(stem)
    return stem


def predict_paths(
    model_dir: str | Path,
    paths: Iterable[str | Path],
    out_dir: str | Path,
    *,
    save_heatmaps: bool = False,
    threads: int = 2,
    px_per_mm: float | None = None,
) -> PredictSummary:
    inferencer = InspectionModel(model_dir, threads=threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.jsonl"
    processed = failed = 0
    taken: set[str] = set()
    with open(results_path, "w", encoding="utf-8") as results:
        for path in expand_inputs(paths):
            try:
                image = read_image(path)
            except ImageReadError as exc:
                failed += 1
                print(f"error: {exc}", file=sys.stderr)
                results.write(json.dumps({"path": str(path), "error": str(exc)}) + "\n")
                continue
            result = inferencer.infer(image)
            decision = decide(result, inferencer.card, px_per_mm=px_per_mm)
            if inferencer.type_classifier is not None:  # the model's type head names each region
                typed = inferencer.type_classifier.classify(
                    image, result.heatmap, decision.defects, decision.pixel_threshold
                )
                decision = decision.model_copy(update={"defects": typed})
            stem = _unique_stem(path, taken)
            overlay_path = write_image_atomic(
                out_dir / "overlays" / f"{stem}.png",
                overlay(image, result.heatmap, threshold=decision.pixel_threshold),
            )
            record = {
                "path": str(path),
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "score": decision.score,
                "verdict": decision.verdict,
                "image_threshold": decision.image_threshold,
                "defects": [d.model_dump() for d in decision.defects],
                "overlay": str(overlay_path),
                "model": {"name": inferencer.name, "version": inferencer.version},
                "infer_ms": round(result.infer_ms, 3),
            }
            if save_heatmaps:
                heat_path = out_dir / "heatmaps" / f"{stem}.npy"
                heat_path.parent.mkdir(parents=True, exist_ok=True)
                np.save(heat_path, result.heatmap.astype(np.float32))
                record["heatmap"] = str(heat_path)
            results.write(json.dumps(record) + "\n")
            results.flush()
            processed += 1
    return PredictSummary(processed=processed, failed=failed, results_path=results_path)
