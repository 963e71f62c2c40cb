"""``qc bench memory-bank``: a PatchCore-style memory over Lite0 features on the AITEX dev fabrics,
alone and combined with trained models (issue 12's "get both").

Per fabric (the split of ``qc bench aitex``: 12 good strips to fit, the rest to test) and seed:
fit training/memory_bank.py's memory on the 12 good strips (greedy coreset of ``--size`` vectors),
score every training strip with its own vectors left out (cross-fitting: 12 good scores for a
threshold instead of 2 held-back ones), score the test strips, and print strip-, tile- and
pixel-level AUROC, the false-reject rate and recall at the largest cross-fitted good score, the fit
time and the scoring time per 256-px tile (torch on this machine's threads; not an ONNX figure).

With ``--trained WORK_DIR`` (a ``qc bench aitex --work-dir WORK_DIR --seeds ...`` run, which keeps
its datasets and models), each fabric and seed is also scored by that trained model and by the two
maps combined: each map divided by its own reference on good strips (the trained model's calibrated
image threshold, the memory's largest cross-fitted good score), then the geometric mean or the
maximum of the two. Figures are AUROCs only for the combinations: neither has a calibrated threshold.

With ``--dataset ROOT`` instead of ``--data``, any dataset in the project's layout (its train/good
images fitted, its test split scored) stands in for the AITEX fabrics, and ``--detector MODEL`` is
the trained model scored and combined beside the memory: the default model's synthetic split
(``make default-model``'s ``var/default-data/synth``) against ``models/default/VERSION``, say.

Run: qc bench memory-bank -- --data ../shared/data/aitex-dev [--seeds 0,1,2] [--size 4000]
     [--trained WORK_DIR] [--json bench/results/memory_bank.json]
     qc bench memory-bank -- --dataset ROOT [--detector MODEL] [--size 10000] [--json ...]
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

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from qc.data import open_dataset  # noqa: E402
from qc.data.convert import convert_aitex  # noqa: E402
from qc.imageio import read_image, read_mask, to_rgb_uint8  # noqa: E402
from qc.inference import Inferencer  # noqa: E402
from qc.metrics import auroc, pixel_metrics, tile_labels_and_scores  # noqa: E402
from qc.padding import SCORE_WINDOW_PX, suppress_padding  # noqa: E402
from qc.tiling import TileGrid  # noqa: E402
from training.backbone import Lite0Features, load_pretrained  # noqa: E402
from qc.machine import machine  # noqa: E402
from training.benchmark import TRAIN_GOOD, eligible_fabrics  # noqa: E402
from training.memory_bank import distance_map, fit_memory_bank  # noqa: E402

TILE_PX, OVERLAP_PX = 256, 32  # configs/train/default.yaml's export tiling


def image_score(heatmap: np.ndarray) -> float:
    return float(cv2.blur(heatmap, (SCORE_WINDOW_PX, SCORE_WINDOW_PX)).max())


def station_map(image: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """Padding cleared as the station clears it (qc.padding), so both heads are judged alike."""
    return suppress_padding(image, heatmap, 0.0)[0]


def measure(maps: list[np.ndarray], scores: np.ndarray, labels: np.ndarray, masks: list) -> dict:
    with_mask = [(m, k) for m, k in zip(maps, masks) if k is not None]
    tiles = [tile_labels_and_scores(m, k) for m, k in with_mask]
    return {
        "image_auroc": auroc(scores, labels),
        "tile_auroc": auroc(np.concatenate([t[1] for t in tiles]), np.concatenate([t[0] for t in tiles])),
        "pixel_auroc": pixel_metrics([m for m, _ in with_mask], [k for _, k in with_mask])["pixel_auroc"],
    }


def held_out_split(root: Path) -> tuple[list, np.ndarray, list]:
    records = open_dataset(root).select(split="test")
    images = [to_rgb_uint8(read_image(r.path)) for r in records]
    masks = []
    for record, image in zip(records, images):
        if record.label == "good":
            masks.append(np.zeros(image.shape[:2], np.uint8))
        elif record.masks:
            masks.append(np.maximum.reduce([read_mask(m) for m in record.masks]))
        else:
            masks.append(None)  # image metrics only
    return images, np.array([r.label == "defect" for r in records]), masks


def bench_fabric(extractor, root: Path, fabric: str, seed: int, size: int, detector: Path | None) -> dict:
    """One dataset (an AITEX fabric's split, or any ``--dataset``) and coreset seed; ``detector``:
    the trained model's folder to score and combine beside the memory."""
    train = [to_rgb_uint8(read_image(r.path)) for r in open_dataset(root).select(split="train", label="good")]
    started = time.perf_counter()
    bank = fit_memory_bank(extractor, train, size=size, seed=seed, tile_px=TILE_PX, overlap_px=OVERLAP_PX)
    fit_s = time.perf_counter() - started
    cross_fitted = [image_score(station_map(im, distance_map(extractor, bank, im, leave_out=i))) for i, im in enumerate(train)]
    reference = max(cross_fitted)
    images, labels, masks = held_out_split(root)
    started = time.perf_counter()
    maps = [station_map(im, distance_map(extractor, bank, im)) for im in images]
    n_tiles = sum(len(TileGrid.for_image(im.shape[0], im.shape[1], TILE_PX, OVERLAP_PX).boxes) for im in images)
    ms_per_tile = (time.perf_counter() - started) * 1000.0 / n_tiles
    scores = np.array([image_score(m) for m in maps])
    row = {
        "fabric": fabric, "seed": seed, "size": size, "fit_s": fit_s, "ms_per_tile": ms_per_tile,
        "memory": measure(maps, scores, labels, masks),
        "cross_fitted_good": cross_fitted,
    }
    row["memory"]["false_reject_rate"] = float(np.mean(scores[~labels] >= reference))
    row["memory"]["recall"] = float(np.mean(scores[labels] >= reference))
    if detector is not None:
        model = Inferencer(detector)
        threshold = model.card.thresholds.image
        results = [model.infer(im) for im in images]
        trained_maps = [r.heatmap for r in results]
        trained_scores = np.array([r.score for r in results])
        row["trained"] = measure(trained_maps, trained_scores, labels, masks)
        row["trained"]["false_reject_rate"] = float(np.mean(trained_scores[~labels] >= threshold))
        row["trained"]["recall"] = float(np.mean(trained_scores[labels] >= threshold))
        for name, combine in (("geometric_mean", lambda a, b: np.sqrt(a * b)), ("maximum", np.maximum)):
            combined = [combine(t / threshold, m / reference) for t, m in zip(trained_maps, maps)]
            row[name] = measure(combined, np.array([image_score(c) for c in combined]), labels, masks)
    return row


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for fabric in dict.fromkeys(r["fabric"] for r in rows):
        runs = [r for r in rows if r["fabric"] == fabric]
        entry = {"fabric": fabric, "runs": len(runs)}
        for head in ("memory", "trained", "geometric_mean", "maximum"):
            if head not in runs[0]:
                continue
            entry[head] = {
                key: {"mean": float(np.mean([r[head][key] for r in runs])), "min": float(np.min([r[head][key] for r in runs]))}
                for key in runs[0][head]
            }
        entry["fit_s"] = float(np.mean([r["fit_s"] for r in runs]))
        entry["ms_per_tile"] = float(np.mean([r["ms_per_tile"] for r in runs]))
        out.append(entry)
    return out


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'fabric':>6} {'seed':>4} {'head':>15} {'img':>6} {'tile':>6} {'px':>6} {'FRR':>6} {'recall':>6}"]
    for r in rows:
        for head in ("memory", "trained", "geometric_mean", "maximum"):
            if head in r:
                m = r[head]
                cell = lambda k: f"{m[k]:.3f}" if k in m else "   -"  # noqa: E731
                lines.append(
                    f"{r['fabric']:>6} {r['seed']:>4} {head:>15} {cell('image_auroc'):>6} {cell('tile_auroc'):>6} "
                    f"{cell('pixel_auroc'):>6} {cell('false_reject_rate'):>6} {cell('recall'):>6}"
                )
        lines.append(f"{'':>6} {'':>4} fit {r['fit_s']:.0f} s, {r['ms_per_tile']:.1f} ms per tile")
    return "\n".join(lines)


def format_summary(entries: list[dict]) -> str:
    lines = [f"{'fabric':>6} {'runs':>4} {'head':>15} " + " ".join(f"{k:>13}" for k in ("img", "tile", "px")) + "   (mean [min])"]
    for e in entries:
        for head in ("memory", "trained", "geometric_mean", "maximum"):
            if head in e:
                cells = [f"{e[head][k]['mean']:.3f} [{e[head][k]['min']:.3f}]" for k in ("image_auroc", "tile_auroc", "pixel_auroc")]
                lines.append(f"{e['fabric']:>6} {e['runs']:>4} {head:>15} " + " ".join(f"{c:>13}" for c in cells))
    return "\n".join(lines)


def refuse_what_cannot_be_used(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.dataset is None:
        if args.detector is not None:
            parser.error("--detector goes with --dataset; with --data, --trained names the models")
        return
    if not (args.dataset / "train" / "good").is_dir():
        parser.error(f"--dataset {args.dataset}: no train/good folder (the project's dataset layout)")
    if args.trained is not None:
        parser.error("--trained goes with --data; with --dataset, --detector names the model")
    if args.detector is not None and not (args.detector / "model.json").is_file():
        parser.error(f"--detector {args.detector}: no model.json (a model folder from qc export)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="the AITEX dev folder")
    source.add_argument("--dataset", type=Path, help="one dataset in the project's layout instead (train/good, test/...)")
    parser.add_argument("--detector", type=Path, default=None, help="with --dataset: a trained model folder to score beside it")
    parser.add_argument("--seeds", default="0", help="comma-separated coreset seeds")
    parser.add_argument("--size", type=int, default=4000, help="memory vectors kept (greedy coreset)")
    parser.add_argument("--fabrics", default=None, help="comma-separated fabric codes (default: every eligible)")
    parser.add_argument("--trained", type=Path, default=None, help="a `qc bench aitex --work-dir` folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "memory_bank.json")
    args = parser.parse_args()
    refuse_what_cannot_be_used(parser, args)  # before the minutes of loading and fitting
    torch.set_num_threads(args.threads)
    extractor = Lite0Features()
    load_pretrained(extractor)
    extractor.eval()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []

    def record(root: Path, name: str, seed: int, detector: Path | None) -> None:
        rows.append(bench_fabric(extractor, root, name, seed, args.size, detector))
        print(format_rows(rows[-1:]), flush=True)
        result = {"size": args.size, "seeds": seeds, "trained": str(args.trained) if args.trained else None,
                  "dataset": str(args.dataset) if args.dataset else None,
                  "detector": str(args.detector) if args.detector else None,
                  "machine": f"{machine()}, torch threads {args.threads}", "rows": rows, "summary": summary(rows)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    if args.dataset is not None:
        for seed in seeds:
            record(args.dataset, args.dataset.name, seed, args.detector)
    else:
        fabrics = args.fabrics.split(",") if args.fabrics else eligible_fabrics(args.data)
        with tempfile.TemporaryDirectory(prefix="qc-bench-memory-") as tmp:
            for fabric in fabrics:
                root = args.trained / f"fabric{fabric}" if args.trained else Path(tmp) / f"fabric{fabric}"
                if not root.exists():
                    convert_aitex(args.data, root, fabric=fabric, train_good=TRAIN_GOOD)
                detectors = {seed: args.trained / "models" / f"aitex{fabric}_seed{seed}" / "bench" for seed in seeds} if args.trained else {}
                for seed in seeds:
                    record(root, fabric, seed, detectors.get(seed))
    print(format_summary(summary(rows)))


if __name__ == "__main__":
    main()
