"""``qc eval``: measure an exported model on a dataset's held-out ``test/`` split.

It runs the ONNX model through the same Inferencer a station uses, so the figures describe what
the line will see, not what the training framework saw.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from qc.data import open_dataset
from qc.data.records import DatasetError
from qc.data.validate import check_dataset
from qc.imageio import read_image, read_mask
from qc.inference import Inferencer
from qc.metrics import auroc, average_precision, pixel_metrics, rates_at_threshold, tile_labels_and_scores


def evaluate_model(
    model_dir: str | Path, data_root: str | Path, *, threads: int = 2, skip_bad: bool = False
) -> dict[str, Any]:
    inferencer = Inferencer(model_dir, threads=threads)
    dataset, _, problems = check_dataset(open_dataset(data_root), skip_bad=skip_bad)
    records = dataset.select(split="test")
    if not records:
        raise DatasetError(f"{data_root}: no test/ images to evaluate on")
    labels, scores, kinds = [], [], []
    heatmaps, masks = [], []
    started = time.perf_counter()
    for record in records:
        image = read_image(record.path)
        result = inferencer.infer(image)
        labels.append(record.label == "defect")
        scores.append(result.score)
        kinds.append(record.defect_type or "good")
        if record.label == "good":
            mask = np.zeros(result.heatmap.shape, np.uint8)
        elif record.masks:
            mask = np.maximum.reduce([read_mask(m) for m in record.masks])
        else:
            continue  # a defect without a mask counts for image metrics only
        heatmaps.append(result.heatmap)
        masks.append(mask)
    elapsed = time.perf_counter() - started
    labels_arr, scores_arr = np.array(labels), np.array(scores)
    threshold = inferencer.card.thresholds.image
    report: dict[str, Any] = {
        "model": {"name": inferencer.name, "version": inferencer.version, "dir": str(inferencer.model_dir)},
        "data": str(data_root),
        "images": {"good": int((~labels_arr).sum()), "defect": int(labels_arr.sum())},
        "image_threshold": threshold,
        "seconds_per_image": elapsed / len(records),
        "skipped": [str(p) for p in problems],
    }
    if labels_arr.all() or not labels_arr.any():
        raise DatasetError(f"{data_root}: test/ needs both good and defect images to evaluate")
    report["image_auroc"] = auroc(scores_arr, labels_arr)
    report["average_precision"] = average_precision(scores_arr, labels_arr)
    report.update(rates_at_threshold(scores_arr, labels_arr, threshold))
    if any(m.any() for m in masks):
        report.update(pixel_metrics(heatmaps, masks))
        tiles = [tile_labels_and_scores(h, m) for h, m in zip(heatmaps, masks)]
        tile_labels = np.concatenate([t[0] for t in tiles])
        tile_scores = np.concatenate([t[1] for t in tiles])
        if tile_labels.any() and not tile_labels.all():
            report["tile_auroc"] = auroc(tile_scores, tile_labels)
            report["tiles"] = {"good": int((~tile_labels).sum()), "defect": int(tile_labels.sum())}
    per_type: dict[str, list[bool]] = defaultdict(list)
    for kind, label, score in zip(kinds, labels, scores):
        if label:
            per_type[kind].append(score >= threshold)
    report["recall_per_type"] = {k: float(np.mean(v)) for k, v in sorted(per_type.items())}
    report["scores"] = [
        {"path": str(r.path), "type": k, "score": float(s), "masks": [str(m) for m in r.masks]}
        for r, k, s in zip(records, kinds, scores)
    ]
    return report


def format_report(report: dict[str, Any]) -> str:
    keys = ["image_auroc", "average_precision", "pixel_auroc", "aupro", "recall", "false_reject_rate", "f1"]
    lines = [
        f"model {report['model']['name']} {report['model']['version']} on {report['data']} "
        f"({report['images']['good']} good, {report['images']['defect']} defect test images)"
    ]
    lines += [f"  {k:<18} {report[k]:.4f}" for k in keys if k in report]
    lines.append(f"  threshold          {report['image_threshold']:.4f}")
    for kind, recall in report["recall_per_type"].items():
        lines.append(f"  recall {kind:<11} {recall:.3f}")
    return "\n".join(lines)


RECORDED_METRICS = (
    "image_auroc", "average_precision", "pixel_auroc", "aupro", "recall", "false_reject_rate", "f1",
)


def record_in_card(model_dir: str | Path, report: dict[str, Any], *, prefix: str | None = None) -> Path:
    """Write the held-out figures into the model card (the onnx file and its sha256 are unchanged).

    Without ``prefix`` they are the card's main figures (``image_auroc`` ...); with one they sit
    beside them as ``<prefix>.image_auroc`` ..., so a model measured on several datasets (the
    default model: synthetic fabric and each real dev fabric) keeps every result.
    """
    from qc.card import load_card, write_card
    from qc.inference import resolve_model_dir

    if prefix is not None and not prefix.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"record prefix {prefix!r}: use letters, digits, '-' and '_' only")
    model_dir = resolve_model_dir(model_dir)
    card = load_card(model_dir)
    key = (lambda k: k) if prefix is None else (lambda k: f"{prefix}.{k}")
    card.metrics.update({key(k): float(report[k]) for k in RECORDED_METRICS if k in report})
    described = (
        f"test/ of {report['data']}: {report['images']['good']} good, "
        f"{report['images']['defect']} defect images"
    )
    # "; "-separated: the main entry ("test/ of ...") first, then "<prefix>: test/ of ..." ones.
    ours = described if prefix is None else f"{prefix}: {described}"
    stale = "test/ of" if prefix is None else f"{prefix}: "
    others = [e for e in card.metrics_data.split("; ") if e and not e.startswith(stale)]
    card.metrics_data = "; ".join([ours, *others] if prefix is None else [*others, ours])
    return write_card(card, model_dir)
