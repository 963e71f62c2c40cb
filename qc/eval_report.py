"""``qc eval --report DIR``: the evaluation as pictures a person can check.

- ``roc.png`` and ``pr.png``: image-level ROC and precision-recall curves, the operating point at
  the card's threshold marked on both;
- ``gallery.png``: the worst misses (defect images scoring lowest below the threshold) and the
  worst false alarms (good images scoring highest at or above it), each with its heatmap overlay
  and, for defects, the ground-truth mask. When there are no misses (or no false alarms), the
  closest calls are shown instead and say so: they are where the next error will come from;
- ``report.json``: the same report ``--json`` writes.

matplotlib (Agg backend, no display needed) is imported here only, so ``qc eval`` without
``--report`` and the station never load it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from qc.imageio import read_image, read_mask
from qc.inference import Inferencer
from qc.metrics import rates_at_threshold, roc_curve
from qc.render import overlay

GALLERY_SIZE = 6


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct threshold, highest threshold first."""
    fpr, tpr, _ = roc_curve(scores, labels)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    tp, fp = tpr[1:] * n_pos, fpr[1:] * n_neg
    return tpr[1:], tp / np.maximum(tp + fp, 1)


def pick_gallery(entries: list[dict[str, Any]], threshold: float, size: int = GALLERY_SIZE) -> dict[str, list[dict]]:
    """{"misses": [...], "false_alarms": [...]}, worst first; each entry gets "closest_call" True when
    it was not actually an error (shown because there were fewer errors than places)."""
    defects = sorted((e for e in entries if e["type"] != "good"), key=lambda e: e["score"])
    goods = sorted((e for e in entries if e["type"] == "good"), key=lambda e: -e["score"])
    misses = [dict(e, closest_call=e["score"] >= threshold) for e in defects[:size]]
    alarms = [dict(e, closest_call=e["score"] < threshold) for e in goods[:size]]
    # errors first, then the closest calls
    misses = [e for e in misses if not e["closest_call"]] + [e for e in misses if e["closest_call"]]
    alarms = [e for e in alarms if not e["closest_call"]] + [e for e in alarms if e["closest_call"]]
    return {"misses": misses, "false_alarms": alarms}


def _curves(report: dict[str, Any], out: Path) -> None:
    plt = _pyplot()
    entries = report["scores"]
    scores = np.array([e["score"] for e in entries], np.float64)
    labels = np.array([e["type"] != "good" for e in entries])
    threshold = report["image_threshold"]
    at = rates_at_threshold(scores, labels, threshold)
    name = f"{report['model']['name']} {report['model']['version']}"

    fpr, tpr, _ = roc_curve(scores, labels)
    fig, ax = plt.subplots(figsize=(5, 5))
    # straight segments between thresholds: tied scores are one point, as in the trapezoid AUROC
    ax.plot(fpr, tpr, marker=".", label=f"AUROC {report['image_auroc']:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.scatter([at["false_reject_rate"]], [at["recall"]], color="red", zorder=3, label=f"threshold {threshold:.3f}")
    ax.set(xlabel="false-reject rate (good images failed)", ylabel="recall (defect images caught)",
           title=f"ROC, {name}", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=100)
    plt.close(fig)

    recall, precision = pr_curve(scores, labels)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(np.r_[0.0, recall], np.r_[1.0, precision], drawstyle="steps-post",
            label=f"AP {report['average_precision']:.3f}")
    ax.scatter([at["recall"]], [at["precision"]], color="red", zorder=3, label=f"F1 {at['f1']:.3f} at threshold")
    ax.set(xlabel="recall", ylabel="precision", title=f"precision-recall, {name}", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "pr.png", dpi=100)
    plt.close(fig)


def _gallery(report: dict[str, Any], model_dir: str | Path, out: Path, threads: int) -> dict[str, list[dict]]:
    plt = _pyplot()
    threshold = report["image_threshold"]
    picked = pick_gallery(report["scores"], threshold)
    rows = [("miss", e) for e in picked["misses"]] + [("false alarm", e) for e in picked["false_alarms"]]
    if not rows:
        return picked
    inferencer = Inferencer(model_dir, threads=threads)
    pixel_threshold = inferencer.card.thresholds.pixel
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 3.2 * len(rows)), squeeze=False)
    for (kind, entry), row in zip(rows, axes):
        image = read_image(entry["path"])
        heatmap = inferencer.infer(image).heatmap
        title = (f"{'closest call, not a ' if entry['closest_call'] else ''}{kind}: {entry['type']} "
                 f"score {entry['score']:.3f} (threshold {threshold:.3f})")
        row[0].imshow(image)
        row[0].set_title(title, fontsize=8, loc="left")
        row[1].imshow(overlay(image, heatmap, threshold=pixel_threshold))
        row[1].set_title(f"heatmap, peak {float(heatmap.max()):.3f}", fontsize=8)
        if entry.get("masks"):
            row[2].imshow(np.maximum.reduce([read_mask(m) for m in entry["masks"]]), cmap="gray", vmin=0, vmax=255)
            row[2].set_title("ground truth", fontsize=8)
        else:
            row[2].imshow(heatmap, cmap="jet", vmin=0, vmax=1)
            row[2].set_title("heatmap 0..1", fontsize=8)
        row[0].set_ylabel(Path(entry["path"]).name, fontsize=7)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out / "gallery.png", dpi=80)
    plt.close(fig)
    return picked


def write_report(report: dict[str, Any], model_dir: str | Path, out_dir: str | Path, *, threads: int = 2) -> Path:
    """Write roc.png, pr.png, gallery.png and report.json to ``out_dir``; returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _curves(report, out)
    picked = _gallery(report, model_dir, out, threads)
    full = dict(report, gallery={k: [e["path"] for e in v] for k, v in picked.items()})
    (out / "report.json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return out
