"""``qc bench self-similarity``: the same trained networks measured with and without the
unrepeated-structure cue (qc/self_similarity.py) beside them.

For each case (a name, an exported model, its dataset root), the cue's threshold is fitted on the
dataset's train/good images exactly as onboarding fits it (training.calibrate.self_similarity_record,
``--margin`` or the config default), and the test split is measured twice by ``qc eval``'s code
(qc.evaluate: the station's Inferencer): once with the card's cue removed, once with the fitted
one. The network, its thresholds and its column factors are the model's own both times, so the
difference is the cue's alone.

Run: qc bench self-similarity -- --case NAME MODEL_DIR DATA_DIR [--case ...] [--margin 1.5]
     [--json bench/results/self_similarity.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from qc.card import load_card, write_card  # noqa: E402
from qc.evaluate import evaluate_model  # noqa: E402
from qc.imageio import read_image  # noqa: E402
from qc.inference import resolve_model_dir  # noqa: E402
from qc.machine import machine  # noqa: E402
from training.calibrate import self_similarity_record  # noqa: E402
from training.config import CalibrationConfig  # noqa: E402

SEAM_FAULTS = ("skipped_stitch", "broken_stitch", "puckering", "crooked_seam", "open_seam")
FIGURES = ("image_auroc", "tile_auroc", "pixel_auroc", "false_reject_rate", "recall")


def with_cue(model_dir: Path, record, work: Path) -> Path:
    """A copy of the model's card (the graph linked, not copied) with ``record`` as its cue."""
    work.mkdir(parents=True)
    card = load_card(model_dir)
    (work / card.onnx_file).symlink_to((model_dir / card.onnx_file).resolve())
    write_card(card.model_copy(update={"self_similarity": record}), work)
    return work


def measure(name: str, model_dir: Path, data: Path, config: CalibrationConfig, work: Path) -> dict:
    model_dir = resolve_model_dir(model_dir)
    good = sorted(p for p in (data / "train" / "good").iterdir() if p.is_file())
    if not good:
        raise SystemExit(f"{data}/train/good holds no images to fit the cue's threshold on")
    images = [read_image(p) for p in good]
    started = time.perf_counter()
    record = self_similarity_record(images, config, data_description=f"{len(images)} good images of {data}/train/good")
    cue_ms = (time.perf_counter() - started) * 1000 / len(images)
    row = {"case": name, "model": str(model_dir), "data": str(data), "cue_threshold": record.threshold,
           "cue_method": record.method, "cue_ms_per_train_image": cue_ms,
           "train_image_px": [int(images[0].shape[1]), int(images[0].shape[0])]}
    for label, cue in (("network", None), ("with_cue", record)):
        report = evaluate_model(with_cue(model_dir, cue, work / f"{name}-{label}"), data)
        row[label] = {k: report.get(k) for k in FIGURES} | {
            "seam_faults_caught": {
                t: round(report["recall_per_type"][t] * sum(1 for s in report["scores"] if s["type"] == t))
                for t in SEAM_FAULTS if t in report["recall_per_type"]
            },
            "seconds_per_image": report["seconds_per_image"],
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs=3, action="append", required=True, metavar=("NAME", "MODEL_DIR", "DATA_DIR"))
    parser.add_argument("--margin", type=float, default=None, help="factor on the good images' largest score (default: the config's)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = CalibrationConfig()
    if args.margin is not None:
        config = config.model_copy(update={"self_similarity_margin": args.margin})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model_dir, data in args.case:
            row = measure(name, Path(model_dir), Path(data), config, Path(tmp))
            rows.append(row)
            a, b = row["network"], row["with_cue"]
            print(
                f"{name}: " + ", ".join(f"{k} {a[k]:.3f} -> {b[k]:.3f}" for k in FIGURES if a[k] is not None)
                + f"; seam faults caught {sum(a['seam_faults_caught'].values())} -> {sum(b['seam_faults_caught'].values())}"
                + f"; s/image {a['seconds_per_image']:.3f} -> {b['seconds_per_image']:.3f}",
                flush=True,
            )
    means = {
        label: {k: float(np.mean([r[label][k] for r in rows if r[label][k] is not None])) for k in FIGURES
                if any(r[label][k] is not None for r in rows)}
        for label in ("network", "with_cue")
    }
    print(f"mean over {len(rows)} cases: " + ", ".join(
        f"{k} {means['network'][k]:.3f} -> {means['with_cue'][k]:.3f}" for k in means["network"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "bench": "self-similarity", "machine": machine(), "margin": config.self_similarity_margin,
            "rows": rows, "mean": means,
        }, indent=1) + "\n")


if __name__ == "__main__":
    main()
