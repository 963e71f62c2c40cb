"""``qc bench flips``: what test-time flips (``net.test_time_flips``) do to trained networks.

For each network a ``qc bench aitex --work-dir WORK_DIR`` run kept (see bench_position.py for the
layout), the same weights are run with each asked-for set of mirror images averaged in: exported
again to ONNX, their thresholds and column factors calibrated again exactly as ``qc train`` does
(training.good_evidence, training.calibrate), and measured by ``qc eval``'s path (qc.evaluate) on
the same test strips as the kept model: strip-, tile- and pixel-level AUROC, the false-reject rate
and recall at each card's threshold. Only how the station runs the network differs.

Run: qc bench flips -- --work WORK_DIR [--flips vertical,all] [--json bench/results/flips.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))  # its sibling bench_position.py knows the kept runs

from bench_position import FIGURES, mean_and_worst, recalibrate, selected_runs  # noqa: E402
from qc.card import load_card, sha256_file, write_card  # noqa: E402
from qc.contract import MODEL_FILE  # noqa: E402
from qc.evaluate import evaluate_model  # noqa: E402
from qc.machine import machine  # noqa: E402
from training.export import export_onnx, load_run, position_record, simplify_onnx  # noqa: E402
from training.net import TEST_TIME_FLIPS  # noqa: E402


def with_flips(work: Path, fabric: str, seed: int, flips: str, out_model: Path) -> float:
    """The kept network run with ``flips``, exported and calibrated into ``out_model``; its image threshold."""
    run = load_run(work / f"run{fabric}_seed{seed}")
    run.net.test_time_flips = flips
    calibration = run.config.calibration
    thresholds, position = recalibrate(
        run, work / f"fabric{fabric}", calibration.image_scores_from, calibration.column_factors
    )
    kept = work / "models" / f"aitex{fabric}_seed{seed}" / "bench"
    shutil.copytree(kept, out_model)
    export_onnx(run.net, out_model / MODEL_FILE, tile_px=run.config.export.tile_px, opset=run.config.export.opset)
    simplify_onnx(out_model / MODEL_FILE)
    card = load_card(kept).model_copy(update={
        "thresholds": thresholds, "position": position_record(position),
        "onnx_sha256": sha256_file(out_model / MODEL_FILE),
    })
    write_card(card, out_model)
    return thresholds.image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="a `qc bench aitex --work-dir` folder")
    parser.add_argument("--fabrics", default=None, help="comma-separated fabric codes (default: every kept run)")
    parser.add_argument("--flips", default="vertical", help=f"comma-separated, of {', '.join(TEST_TIME_FLIPS)}")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "flips.json")
    args = parser.parse_args()
    variants = args.flips.split(",")
    unknown = [v for v in variants if v not in TEST_TIME_FLIPS]
    if unknown:
        raise SystemExit(f"unknown --flips {', '.join(unknown)}; choose from {', '.join(TEST_TIME_FLIPS)}")
    runs = selected_runs(args.work, args.fabrics)
    rows = []
    print(f"{'fabric':>6} {'seed':>4} {'flips':>10} " + " ".join(f"{k:>17}" for k in FIGURES) + "  threshold")
    with tempfile.TemporaryDirectory(prefix="qc-bench-flips-") as tmp:
        for fabric, seed in runs:
            data = args.work / f"fabric{fabric}"
            kept = args.work / "models" / f"aitex{fabric}_seed{seed}" / "bench"
            card = load_card(kept)  # its training config says how the kept model runs (absent: before flips)
            kept_flips = card.training.config.get("net", {}).get("test_time_flips", "none")
            arms = {f"kept ({kept_flips})": (kept, card.thresholds.image)}
            for flips in variants:
                model = Path(tmp) / f"aitex{fabric}_seed{seed}_{flips}"
                arms[flips] = (model, with_flips(args.work, fabric, seed, flips, model))
            row = {"fabric": fabric, "seed": seed, "arms": {}}
            for name, (model, threshold) in arms.items():
                figures = evaluate_model(model, data)
                row["arms"][name] = {"threshold": threshold, **{k: figures.get(k) for k in FIGURES}}
                cells = " ".join(f"{figures[k]:>17.3f}" for k in FIGURES)
                print(f"{fabric:>6} {seed:>4} {name[:10]:>10} {cells}  {threshold:.4f}", flush=True)
            rows.append(row)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"work": str(args.work), "machine": machine(), "rows": rows,
                                             "summary": summary(rows)}, indent=1) + "\n", encoding="utf-8")
    print(format_summary(summary(rows)))


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for fabric in dict.fromkeys(r["fabric"] for r in rows):
        runs = [r for r in rows if r["fabric"] == fabric]
        for arm in runs[0]["arms"]:
            out.append({"fabric": fabric, "arm": arm, "runs": len(runs),
                        **mean_and_worst([r["arms"][arm] for r in runs])})
    return out


def format_summary(entries: list[dict]) -> str:
    lines = [f"{'fabric':>6} {'runs':>4} {'flips':>15} " + " ".join(f"{k:>17}" for k in FIGURES) + "   (mean [min])"]
    for e in entries:
        cells = " ".join(f"{e[k]['mean']:.3f} [{e[k]['min']:.3f}]".rjust(17) for k in FIGURES)
        lines.append(f"{e['fabric']:>6} {e['runs']:>4} {e['arm']:>15} {cells}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
