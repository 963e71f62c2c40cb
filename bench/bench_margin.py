"""``qc bench margin``: what the image threshold's odds margin trades on trained models: good strips
rejected against defects caught.

For each model a ``qc bench aitex --work-dir WORK_DIR`` run kept (WORK_DIR/run<fabric>_seed<n>,
WORK_DIR/models/aitex<fabric>_seed<n>/bench, WORK_DIR/fabric<fabric>), the test strips are scored once
as ``qc eval`` scores them (qc.evaluate, the kept card and its column factors). The image threshold is
then set again from the run's own calibration statistic, the highest score of the good strips it
calibrated on (held back and cross-fitted, run.json), with each odds margin in ``--margins`` and
capped at the run's ``calibration.max_threshold`` (training/calibrate.py). The network and the scores
are the same for every margin: only the threshold moves, so the false-reject rate and the recall
at each margin are measured on the same strips.

Run: qc bench margin -- --work WORK_DIR [--work WORK_DIR ...] [--margins 2,4,8] [--json bench/results/margin.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))  # its sibling bench_position.py knows the kept runs

import numpy as np  # noqa: E402

from bench_position import add_kept_runs_arguments, runs_of  # noqa: E402
from qc.evaluate import evaluate_model  # noqa: E402
from qc.machine import machine  # noqa: E402
from qc.metrics import rates_at_threshold  # noqa: E402

from training.calibrate import image_threshold  # noqa: E402
from training.config import CalibrationConfig  # noqa: E402


def margin_list(text: str) -> list[float]:
    try:
        margins = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--margins wants comma-separated numbers, got {text!r}") from None
    if not margins or any(m < 1.0 for m in margins):
        raise argparse.ArgumentTypeError(f"--margins wants odds factors of at least 1, got {text!r}")
    return margins


def run_calibration(run_record: dict) -> CalibrationConfig:
    """The run's calibration config; runs from before image_odds_margin existed set both thresholds with odds_margin."""
    config = dict(run_record["config"]["calibration"])
    config.setdefault("image_odds_margin", config["odds_margin"])
    return CalibrationConfig.model_validate(config)


def threshold_at(statistic: float, calibration: CalibrationConfig, margin: float) -> float:
    """Training's image threshold (training.calibrate) from the one statistic, at ``margin``, under the run's cap."""
    return image_threshold(np.array([statistic]), calibration.model_copy(update={"image_odds_margin": margin}))[0]


def calibration_statistic(run_record: dict, card_threshold: float) -> float:
    """The good-max the run's image threshold was set from.

    Only a good-max threshold can be set again from run.json's summary; one that the run's own margin
    and cap do not reproduce (a good-quantile threshold, or a card refitted since) ends the bench."""
    calibration = run_record["calibration"]
    maxima = [calibration["good_scores"]["max"]]
    if calibration.get("trained_on_scores"):
        maxima.append(calibration["trained_on_scores"]["max"])
    statistic = float(max(maxima))
    config = run_calibration(run_record)
    again = threshold_at(statistic, config, config.image_odds_margin)
    if abs(again - card_threshold) > 1e-6:
        raise SystemExit(
            f"the card's image threshold {card_threshold:.6f} is not the good-max {statistic:.6f} "
            f"x{config.image_odds_margin:g} odds capped at {config.max_threshold:g} ({again:.6f}) that run.json "
            "records: this bench needs a good-max threshold"
        )
    return statistic


def measure(work: Path, fabric: str, seed: int, margins: list[float]) -> dict:
    report = evaluate_model(work / "models" / f"aitex{fabric}_seed{seed}" / "bench", work / f"fabric{fabric}")
    record = json.loads((work / f"run{fabric}_seed{seed}" / "run.json").read_text(encoding="utf-8"))
    statistic = calibration_statistic(record, report["image_threshold"])
    calibration = run_calibration(record)
    scores = np.array([s["score"] for s in report["scores"]])
    labels = np.array([s["type"] != "good" for s in report["scores"]])
    arms = {}
    for margin in margins:
        threshold = threshold_at(statistic, calibration, margin)
        rates = rates_at_threshold(scores, labels, threshold)
        arms[f"{margin:g}"] = {"threshold": threshold, "false_reject_rate": rates["false_reject_rate"],
                               "recall": rates["recall"], "good_rejected": int((scores[~labels] >= threshold).sum()),
                               "defects_caught": int((scores[labels] >= threshold).sum())}
    return {"work": str(work), "fabric": fabric, "seed": seed, "statistic": statistic,
            "own_margin": calibration.image_odds_margin, "cap": calibration.max_threshold, "test_good": int((~labels).sum()), "test_defect": int(labels.sum()),
            "image_auroc": report["image_auroc"], "margins": arms}


def summary(rows: list[dict], margins: list[float]) -> list[dict]:
    """Per fabric and margin: mean and worst false-reject rate and recall, and the strips counted."""
    out = []
    for fabric in dict.fromkeys(r["fabric"] for r in rows):
        runs = [r for r in rows if r["fabric"] == fabric]
        entry = {"fabric": fabric, "runs": len(runs)}
        for margin in (f"{m:g}" for m in margins):
            arms = [r["margins"][margin] for r in runs]
            entry[margin] = {
                "false_reject_rate": {"mean": float(np.mean([a["false_reject_rate"] for a in arms])),
                                      "max": float(np.max([a["false_reject_rate"] for a in arms]))},
                "recall": {"mean": float(np.mean([a["recall"] for a in arms])),
                           "min": float(np.min([a["recall"] for a in arms]))},
                "good_rejected": f"{sum(a['good_rejected'] for a in arms)} of {sum(r['test_good'] for r in runs)}",
                "defects_caught": f"{sum(a['defects_caught'] for a in arms)} of {sum(r['test_defect'] for r in runs)}",
            }
        out.append(entry)
    return out


def format_summary(entries: list[dict], margins: list[float]) -> str:
    lines = [f"{'fabric':>6} {'runs':>4} {'margin':>6} {'FRR mean [max]':>16} {'recall mean [min]':>18} "
             f"{'good rejected':>14} {'defects caught':>15}"]
    for e in entries:
        for margin in (f"{m:g}" for m in margins):
            a = e[margin]
            frr, rec = a["false_reject_rate"], a["recall"]
            lines.append(f"{e['fabric']:>6} {e['runs']:>4} {margin:>6} "
                         f"{frr['mean']:.3f} [{frr['max']:.3f}]".ljust(34) + " "
                         f"{rec['mean']:.3f} [{rec['min']:.3f}]".rjust(18) + " "
                         f"{a['good_rejected']:>14} {a['defects_caught']:>15}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_kept_runs_arguments(parser)
    parser.add_argument("--margins", type=margin_list, default=[2.0, 4.0, 8.0],
                        help="comma-separated odds margins (calibration.image_odds_margin; training's default: 4)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "margin.json")
    args = parser.parse_args()
    runs = runs_of(args.work, args.fabrics)
    rows = []
    print(f"{'fabric':>6} {'seed':>4} " + " ".join(f"{'x' + format(m, 'g'):>14}" for m in args.margins)
          + "   (false-reject rate / recall)")
    for work, fabric, seed in runs:
        row = measure(work, fabric, seed, args.margins)
        rows.append(row)
        cells = " ".join(f"{a['false_reject_rate']:.3f} / {a['recall']:.3f}".rjust(14) for a in row["margins"].values())
        print(f"{fabric:>6} {seed:>4} {cells}", flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine(), "margins": args.margins, "rows": rows,
                                         "summary": summary(rows, args.margins)}, indent=1) + "\n", encoding="utf-8")
    print(format_summary(summary(rows, args.margins), args.margins))


if __name__ == "__main__":
    main()
