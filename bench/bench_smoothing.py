"""``qc bench smoothing``: how the shown map's smoothing ranks defect pixels against good ones, on the
same trained networks.

The station shows (and outlines regions on) the map smoothed with a 4-px Gaussian; a card with
``heatmap.broad_sigma_px`` shows the larger of that and a broader smoothing (qc.postprocess). For each
model that ``qc bench aitex --work-dir WORK_DIR`` kept (see bench_position.py for the layout), every
test strip's map is taken once as the station scores it (Inferencer.scored_map: tiles blended,
padding cleared, the card's column factors applied), then shown each way: ``fine`` (the 4-px
smoothing alone), ``max<S>`` (the larger of the fine map and one smoothed at S px) and ``broad<S>``
(the S-px smoothing alone). Pixel AUROC, AUPRO and tile AUROC (the tile's maximum of the shown map,
as ``qc bench aitex`` takes it) are printed per way. The image score and the verdicts do not
depend on the smoothing (the score is taken from the scored map), so they are not refitted.

Run: qc bench smoothing -- --work WORK_DIR [--work WORK_DIR ...] [--sigmas 8,16] [--json bench/results/smoothing.json]
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

import numpy as np  # noqa: E402

from bench_position import add_kept_runs_arguments, per_fabric_summary, runs_of  # noqa: E402
from qc.data import open_dataset  # noqa: E402
from qc.imageio import read_image, read_mask  # noqa: E402
from qc.inference import Inferencer  # noqa: E402
from qc.machine import machine  # noqa: E402
from qc.metrics import auroc, pixel_metrics, tile_labels_and_scores  # noqa: E402
from qc.postprocess import broad_smoothing, shown_heatmap  # noqa: E402

Shown = Callable[[np.ndarray], np.ndarray]
MEASURES = ("pixel_auroc", "aupro", "tile_auroc")


def sigma_list(text: str) -> list[float]:
    try:
        sigmas = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sigmas wants comma-separated numbers of px, got {text!r}") from None
    if not sigmas or any(s <= 0 for s in sigmas):
        raise argparse.ArgumentTypeError(f"--sigmas wants sigmas above 0 px, got {text!r}")
    return sigmas


def ways(sigmas: list[float]) -> dict[str, Shown]:
    out: dict[str, Shown] = {"fine": lambda m: shown_heatmap(m.copy())}
    for s in sigmas:
        out[f"max{s:g}"] = lambda m, s=s: shown_heatmap(m.copy(), s)
        out[f"broad{s:g}"] = lambda m, s=s: np.clip(broad_smoothing(m, s), 0.0, 1.0)  # as the station computes it
    return out


def strip_maps(model_dir: Path, data: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The scored map and the mask of every test strip with a mask or none needed (good)."""
    inferencer = Inferencer(model_dir)
    maps, masks = [], []
    for record in open_dataset(data).select(split="test"):
        if record.label == "defect" and not record.masks:
            continue  # counts for image metrics only, as in qc.evaluate
        heatmap, _ = inferencer.scored_map(read_image(record.path))
        good = np.zeros(heatmap.shape, np.uint8)
        masks.append(np.maximum.reduce([read_mask(m) for m in record.masks]) if record.masks else good)
        maps.append(heatmap)
    return maps, masks


def measure(maps: list[np.ndarray], masks: list[np.ndarray], show: Shown) -> dict[str, float]:
    shown = [show(m) for m in maps]
    pixels = pixel_metrics(shown, masks)
    tiles = [tile_labels_and_scores(h, m) for h, m in zip(shown, masks)]
    tile_auroc = auroc(np.concatenate([t[1] for t in tiles]), np.concatenate([t[0] for t in tiles]))
    return {"pixel_auroc": pixels["pixel_auroc"], "aupro": pixels["aupro"], "tile_auroc": tile_auroc}


def summary(rows: list[dict], names: list[str]) -> list[dict]:
    """Per fabric and way: mean and worst over the seeds."""
    return per_fabric_summary(rows, names, lambda row, name: row["ways"][name], MEASURES)


def format_summary(entries: list[dict], names: list[str]) -> str:
    lines = [f"{'fabric':>6} {'way':>8} {'pixel AUROC':>15} {'AUPRO':>15} {'tile AUROC':>15}   (mean [min])"]
    for e in entries:
        for name in names:
            cells = " ".join(f"{e[name][k]['mean']:.3f} [{e[name][k]['min']:.3f}]".rjust(15) for k in MEASURES)
            lines.append(f"{e['fabric']:>6} {name:>8} {cells}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_kept_runs_arguments(parser)
    parser.add_argument("--sigmas", type=sigma_list, default=[8.0, 16.0],
                        help="comma-separated broad sigmas in px (export.broad_sigma_px; training's default: 16)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "smoothing.json")
    args = parser.parse_args()
    shows = ways(args.sigmas)
    runs = runs_of(args.work, args.fabrics)
    rows = []
    for work, fabric, seed in runs:
        maps, masks = strip_maps(work / "models" / f"aitex{fabric}_seed{seed}" / "bench", work / f"fabric{fabric}")
        measured = {name: measure(maps, masks, show) for name, show in shows.items()}
        rows.append({"work": str(work), "fabric": fabric, "seed": seed, "ways": measured})
        print(f"{fabric} seed {seed}: " + ", ".join(
            f"{name} {m['pixel_auroc']:.3f}/{m['aupro']:.3f}/{m['tile_auroc']:.3f}" for name, m in measured.items()),
            flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine(), "sigmas": args.sigmas, "ways": list(shows),
                                         "rows": rows, "summary": summary(rows, list(shows))}, indent=1) + "\n",
                             encoding="utf-8")
    print(format_summary(summary(rows, list(shows)), list(shows)))


if __name__ == "__main__":
    main()
