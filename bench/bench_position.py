"""``qc bench position``: what position-aware normalisation (qc/position.py) does to trained models.

For each model a ``qc bench aitex --work-dir WORK_DIR --seeds ...`` run kept (WORK_DIR/run<fabric>_seed<n>,
WORK_DIR/models/aitex<fabric>_seed<n>/bench, WORK_DIR/fabric<fabric>), this does after the fact what
``qc train`` now does after training (training.good_evidence, training.calibrate): fit the column
factors on the good strips the model trained on, score those strips with factors fitted without
each (``--image-scores-from all_good``, training's default), calibrate the thresholds again with
the factors applied, and write both into a copy of the model's card. Then ``qc eval``'s path
(qc.evaluate) measures the model as kept and the copy, on the same test strips: strip-, tile- and
pixel-level AUROC, the false-reject rate and recall at each card's threshold. The network is the
same in both: only the station's post-processing and thresholds differ.

Run: qc bench position -- --work WORK_DIR [--json bench/results/position.json] [--image-scores-from held_back]
     [--column-factors heat] [--column-profile-share 0.5] [--fill-padding] [--max-threshold 0.999]
     [--position never]   (the copy calibrated without column factors: what they do for these networks)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from qc.card import Thresholds, load_card, write_card  # noqa: E402
from qc.evaluate import evaluate_model  # noqa: E402
from qc.position import ColumnFactors, quieted_columns  # noqa: E402
from qc.machine import machine  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from training.calibrate import calibrate  # noqa: E402
from training.config import CalibrationConfig  # noqa: E402
from training.good_evidence import good_evidence  # noqa: E402
from training.data import find_training_images, load_images, split_train_val  # noqa: E402
from training.export import load_run, position_record  # noqa: E402

FIGURES = ("image_auroc", "tile_auroc", "pixel_auroc", "false_reject_rate", "recall")


def kept_runs(work: Path) -> list[tuple[str, int]]:
    found = []
    for run in sorted(work.glob("run*_seed*")):
        match = re.fullmatch(r"run(\w+?)_seed(\d+)", run.name)
        if match and (run / "run.json").is_file():
            found.append((match[1], int(match[2])))
    return found


def selected_runs(work: Path, fabrics: str | None) -> list[tuple[str, int]]:
    """The kept runs of the comma-separated ``fabrics`` (all when None); none found ends the bench."""
    wanted = set(fabrics.split(",")) if fabrics else None
    runs = [(f, s) for f, s in kept_runs(work) if wanted is None or f in wanted]
    if not runs:
        raise SystemExit(f"{work}: no kept qc bench aitex runs (run<fabric>_seed<n>/run.json)")
    return runs


def add_kept_runs_arguments(parser: argparse.ArgumentParser) -> None:
    """--work (repeatable) and --fabrics, for benches that read the kept runs of several work folders."""
    parser.add_argument("--work", type=Path, action="append", required=True,
                        help="a `qc bench aitex --work-dir` folder; repeat for several")
    parser.add_argument("--fabrics", default=None, help="comma-separated fabric codes (default: every kept run)")


def runs_of(works: list[Path], fabrics: str | None) -> list[tuple[Path, str, int]]:
    """(work folder, fabric, seed) of every kept run selected in each work folder, in order."""
    return [(work, f, s) for work in works for f, s in selected_runs(work, fabrics)]


def recalibrate(
    run, data: Path, image_scores_from: str, column_factors: str, fill_padding: bool | None = None,
    max_threshold: float | None = None, column_profile_share: float | None = None, position_mode: str | None = None,
) -> tuple[Thresholds, dict | None]:
    """A kept run's thresholds and column factors calibrated again as ``qc train`` does, for its net as it is now,
    fed as ``export.fill_padding`` says: ``fill_padding``, or the run's own when None; thresholds capped at
    ``max_threshold``, or the run's own cap when None; column profiles from ``column_profile_share`` (the
    run's own when None); column factors fitted or not as ``position_mode`` says (calibration.position; the
    run's own when None)."""
    config = run.config
    export = config.export if fill_padding is None else config.export.model_copy(update={"fill_padding": fill_padding})
    update = {"image_scores_from": image_scores_from, "column_factors": column_factors}
    if max_threshold is not None:
        update["max_threshold"] = max_threshold
    if column_profile_share is not None:
        update["column_profile_share"] = column_profile_share
    if position_mode is not None:
        update["position"] = position_mode
    calibration = config.calibration.model_validate({**config.calibration.model_dump(), **update})
    trained_on, held_back = split_train_val(
        find_training_images(data), val_fraction=config.data.val_fraction,
        min_val_images=config.data.min_val_images, seed=config.seed,
    )
    trained_images, held_images = load_images(trained_on), load_images(held_back)
    fit, trained_on_scores = good_evidence(run.net, trained_images, held_images, calibration, export, source=data)
    position = fit.record if fit else None
    scale = ColumnFactors.from_record(position)
    thresholds, _ = calibrate(
        run.net, held_images, calibration, export,
        data_description=f"{len(held_back)} good images held back from {data / 'train' / 'good'} (seed {config.seed})",
        seed=config.seed, position_scale=scale, trained_on_scores=trained_on_scores,
    )
    return thresholds, position


def refit(
    work: Path, fabric: str, seed: int, out_model: Path, image_scores_from: str, column_factors: str,
    fill_padding: bool | None = None, max_threshold: float | None = None, column_profile_share: float | None = None,
    position_mode: str | None = None,
) -> dict:
    """The kept model's card with column factors and thresholds calibrated with them, in ``out_model``;
    its tiling says whether the station feeds the padding mirrored over by cloth (``fill_padding``, or
    as the run was trained when None)."""
    run = load_run(work / f"run{fabric}_seed{seed}")
    if fill_padding is None:
        fill_padding = run.config.export.fill_padding
    thresholds, position = recalibrate(
        run, work / f"fabric{fabric}", image_scores_from, column_factors, fill_padding, max_threshold,
        column_profile_share, position_mode,
    )
    model = work / "models" / f"aitex{fabric}_seed{seed}" / "bench"
    shutil.copytree(model, out_model)
    card = load_card(model)
    tiling = card.tiling.model_copy(update={"fill_padding": fill_padding})
    card = card.model_copy(update={"thresholds": thresholds, "position": position_record(position), "tiling": tiling})
    write_card(card, out_model)
    return {"quieted_columns": quieted_columns(position["scale"]) if position else 0, "threshold": thresholds.image}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="a `qc bench aitex --work-dir` folder")
    parser.add_argument("--fabrics", default=None, help="comma-separated fabric codes (default: every kept run)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "position.json")
    parser.add_argument(
        "--image-scores-from", choices=("all_good", "held_back"), default="all_good",
        help="the refitted thresholds' calibration.image_scores_from (training's default: all_good)",
    )
    parser.add_argument(
        "--column-factors", choices=("heat", "odds"), default="odds",
        help="the refitted factors' calibration.column_factors: what each factor multiplies (qc/position.py; "
        "training's default: odds)",
    )
    parser.add_argument(
        "--fill-padding", action="store_const", const=True, default=None,
        help="calibrate and run the refitted cards with the padding mirrored over by cloth (tiling.fill_padding; "
        "default: as each run was trained)",
    )
    parser.add_argument(
        "--max-threshold", type=float, default=None,
        help="the refitted thresholds' calibration.max_threshold, the cap (default: as each run was trained)",
    )
    parser.add_argument(
        "--column-profile-share", type=float, default=None,
        help="the refitted factors' calibration.column_profile_share: columns quieted down from the heat this "
        "share of the good strips reach (default: as each run was trained)",
    )
    parser.add_argument(
        "--position", choices=("auto", "always", "never"), default=None,
        help="the refitted cards' calibration.position: 'never' calibrates them without column factors, to "
        "measure what the factors do for these networks (default: as each run was trained)",
    )
    args = parser.parse_args()
    if args.column_profile_share is not None:
        try:
            CalibrationConfig(column_profile_share=args.column_profile_share)
        except ValidationError as exc:
            parser.error(f"--column-profile-share {args.column_profile_share:g}: {exc.errors()[0]['msg']}")
    if args.max_threshold is not None:
        try:  # the cap's bounds are calibration.max_threshold's own
            CalibrationConfig(max_threshold=args.max_threshold)
        except ValidationError as exc:
            parser.error(f"--max-threshold {args.max_threshold:g}: {exc.errors()[0]['msg']}")
    runs = selected_runs(args.work, args.fabrics)
    rows = []
    print(f"{'fabric':>6} {'seed':>4} {'':>6} " + " ".join(f"{k:>17}" for k in FIGURES) + "  threshold")
    with tempfile.TemporaryDirectory(prefix="qc-bench-position-") as tmp:
        for fabric, seed in runs:
            data = args.work / f"fabric{fabric}"
            kept = args.work / "models" / f"aitex{fabric}_seed{seed}" / "bench"
            copy = Path(tmp) / f"aitex{fabric}_seed{seed}"
            refit_record = refit(
                args.work, fabric, seed, copy, args.image_scores_from, args.column_factors, args.fill_padding,
                args.max_threshold, args.column_profile_share, args.position,
            )
            before, after = evaluate_model(kept, data), evaluate_model(copy, data)
            row = {"fabric": fabric, "seed": seed, **refit_record,
                   "kept_threshold": before["image_threshold"],
                   "kept": {k: before.get(k) for k in FIGURES}, "position": {k: after.get(k) for k in FIGURES}}
            rows.append(row)
            for name, threshold in (("kept", row["kept_threshold"]), ("position", row["threshold"])):
                cells = " ".join(f"{row[name][k]:>17.3f}" for k in FIGURES)
                print(f"{fabric:>6} {seed:>4} {name[:6]:>6} {cells}  {threshold:.4f}", flush=True)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"work": str(args.work), "machine": machine(),
                                             "image_scores_from": args.image_scores_from,
                                             "column_factors": args.column_factors,
                                             "fill_padding": args.fill_padding,
                                             "max_threshold": args.max_threshold,
                                             "column_profile_share": args.column_profile_share,
                                             "position_mode": args.position, "rows": rows,
                                             "summary": summary(rows)}, indent=1) + "\n", encoding="utf-8")
    print(format_summary(summary(rows)))


def mean_and_worst(figures: list[dict], keys: Sequence[str] = FIGURES) -> dict:
    """Each of ``keys`` over several runs: its mean and its minimum."""
    return {k: {"mean": float(np.mean([f[k] for f in figures])), "min": float(np.min([f[k] for f in figures]))}
            for k in keys}


def per_fabric_summary(
    rows: list[dict], names: Sequence[str], figures_of: Callable[[dict, str], dict], keys: Sequence[str]
) -> list[dict]:
    """Per fabric and per named way of each row (``figures_of(row, name)``): mean and worst over the
    seeds of each of ``keys``. The smoothing and image-score benches summarise their rows the same way."""
    out = []
    for fabric in dict.fromkeys(r["fabric"] for r in rows):
        runs = [r for r in rows if r["fabric"] == fabric]
        entry = {"fabric": fabric, "runs": len(runs)}
        for name in names:
            entry[name] = mean_and_worst([figures_of(r, name) for r in runs], keys)
        out.append(entry)
    return out


def summary(rows: list[dict]) -> list[dict]:
    return per_fabric_summary(rows, ("kept", "position"), lambda row, name: row[name], FIGURES)


def format_summary(entries: list[dict]) -> str:
    lines = [f"{'fabric':>6} {'runs':>4} {'':>8} " + " ".join(f"{k:>17}" for k in FIGURES) + "   (mean [min])"]
    for e in entries:
        for name in ("kept", "position"):
            cells = " ".join(f"{e[name][k]['mean']:.3f} [{e[name][k]['min']:.3f}]".rjust(17) for k in FIGURES)
            lines.append(f"{e['fabric']:>6} {e['runs']:>4} {name:>8} {cells}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
