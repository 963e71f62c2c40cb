"""``qc bench image-score``: which way of turning a heatmap into an image score separates defective
strips from good ones best, on the same trained networks.

The station scores an image by the hottest 5x5 local average of its map (qc.padding). A speck of
false heat scores like a defect of any size, so broader evidence might rank better: a wider local
average, or the mean of the hottest pixels of the 5x5-averaged map (a line or a patch has many hot
pixels, a speck few); a narrower average might keep defects of a few pixels. For each model a
``qc bench aitex --work-dir WORK_DIR`` run kept (see bench_position.py for the layout), every test
strip's map is taken exactly as the station scores it (Inferencer.scored_map: tiles blended, padding
cleared, the card's column factors applied) and scored by each rule; strip-level AUROC and
tile-level AUROC (256-px tiles, a tile defective when its mask has >= 16 px, the rule applied to
the tile's map) are printed per rule. Thresholds are not
refitted: AUROC needs none. The rule ``max5`` ranks strips exactly as ``qc eval`` does for a card
without the unrepeated-structure cue (qc/self_similarity.py joins it after these maps); its tile
AUROC differs from ``qc bench aitex``'s, which takes each tile's maximum of the smoothed map.

Run: qc bench image-score -- --work WORK_DIR [--fabrics 00,06] [--json bench/results/image_score.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))  # its sibling bench_position.py knows the kept runs

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench_position import per_fabric_summary, selected_runs  # noqa: E402
from qc.data import open_dataset  # noqa: E402
from qc.imageio import read_image, read_mask  # noqa: E402
from qc.inference import Inferencer  # noqa: E402
from qc.metrics import auroc, labelled_tiles  # noqa: E402
from qc.padding import SCORE_WINDOW_PX  # noqa: E402
from qc.machine import machine  # noqa: E402

Rule = Callable[[np.ndarray], float]


def local_average(heatmap: np.ndarray, side_px: int) -> np.ndarray:
    return cv2.blur(heatmap.astype(np.float32, copy=False), (side_px, side_px), borderType=cv2.BORDER_REPLICATE)


def pooled_max(side_px: int) -> Rule:
    return lambda heatmap: float(local_average(heatmap, side_px).max())


def hottest_mean(count: int) -> Rule:
    """The mean of the ``count`` hottest values of the station's 5x5-averaged map."""

    def rule(heatmap: np.ndarray) -> float:
        flat = local_average(heatmap, SCORE_WINDOW_PX).ravel()
        n = min(count, flat.size)
        return float(np.partition(flat, flat.size - n)[flat.size - n :].mean())

    return rule


RULES: dict[str, Rule] = {
    "max3": pooled_max(3),
    "max5": pooled_max(SCORE_WINDOW_PX),  # the station's score
    "max9": pooled_max(9),
    "max15": pooled_max(15),
    "top50": hottest_mean(50),
    "top200": hottest_mean(200),
    "top800": hottest_mean(800),
}


def score_model(model_dir: Path, data: Path) -> dict:
    """Strip- and tile-level AUROC of every rule for one model on its fabric's test strips."""
    inferencer = Inferencer(model_dir)
    strip_labels, strip_scores = [], {name: [] for name in RULES}
    tile_labels, tile_scores = [], {name: [] for name in RULES}
    for record in open_dataset(data).select(split="test"):
        heatmap, _ = inferencer.scored_map(read_image(record.path))
        defective = record.label == "defect"
        strip_labels.append(defective)
        for name, rule in RULES.items():
            strip_scores[name].append(rule(heatmap))
        if defective and not record.masks:
            continue  # a defect without a mask counts at strip level only, as in qc.evaluate
        good = np.zeros(heatmap.shape, np.uint8)
        mask = np.maximum.reduce([read_mask(m) for m in record.masks]) if defective else good
        for label, tile in labelled_tiles(heatmap, mask):
            tile_labels.append(label)
            for name, rule in RULES.items():
                tile_scores[name].append(rule(tile))
    strips, tiles = np.array(strip_labels), np.array(tile_labels)
    return {name: {"image_auroc": auroc(np.array(strip_scores[name]), strips),
                   "tile_auroc": auroc(np.array(tile_scores[name]), tiles)} for name in RULES}


def summary(rows: list[dict]) -> list[dict]:
    """Per fabric and rule: mean and worst over the seeds."""
    return per_fabric_summary(rows, RULES, lambda row, name: row["rules"][name], ("image_auroc", "tile_auroc"))


def format_summary(entries: list[dict]) -> str:
    lines = [f"{'fabric':>6} {'rule':>7} {'image AUROC':>15} {'tile AUROC':>15}   (mean [min])"]
    for e in entries:
        for name in RULES:
            cells = " ".join(f"{e[name][k]['mean']:.3f} [{e[name][k]['min']:.3f}]".rjust(15)
                             for k in ("image_auroc", "tile_auroc"))
            lines.append(f"{e['fabric']:>6} {name:>7} {cells}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="a `qc bench aitex --work-dir` folder")
    parser.add_argument("--fabrics", default=None, help="comma-separated fabric codes (default: every kept run)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "image_score.json")
    args = parser.parse_args()
    rows = []
    for fabric, seed in selected_runs(args.work, args.fabrics):
        model = args.work / "models" / f"aitex{fabric}_seed{seed}" / "bench"
        rules = score_model(model, args.work / f"fabric{fabric}")
        rows.append({"fabric": fabric, "seed": seed, "rules": rules})
        print(f"{fabric} seed {seed}: " + ", ".join(
            f"{name} {r['image_auroc']:.3f}/{r['tile_auroc']:.3f}" for name, r in rules.items()), flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"work": str(args.work), "machine": machine(), "rules": list(RULES),
                                         "rows": rows, "summary": summary(rows)}, indent=1) + "\n", encoding="utf-8")
    print(format_summary(summary(rows)))


if __name__ == "__main__":
    main()
