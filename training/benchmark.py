"""``qc bench aitex``: the accuracy protocol (docs/architecture.md) on every AITEX dev fabric.

For each fabric with at least 5 defect strips: convert (12 good strips to train/, the rest to
test/), train with ONE configuration, calibrate, export, evaluate the exported ONNX model on
test/. Onboarding time is train + calibrate + export, the time a factory waits for a new fabric.

``seeds`` repeats every fabric with each training seed and adds a mean/min/max summary: one run is
a noisy draw (8 good test strips; on fabric 06 two runs of the same configuration scored image AUROC
0.65 and 0.90), so a change is judged on several.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from qc.card import load_card
from qc.data import open_dataset
from qc.data.convert import convert_aitex
from qc.evaluate import evaluate_model
from qc.machine import machine
from training.bench_summary import COLUMNS, summarise
from training.commands import run_export, run_train, write_json_atomic
from training.export import RUN_FILE

MIN_DEFECT_STRIPS = 5
TRAIN_GOOD = 12


def eligible_fabrics(aitex_root: Path) -> list[str]:
    fabrics = open_dataset(aitex_root, "aitex").fabrics()
    return [f for f, row in fabrics.items() if row["defect"] >= MIN_DEFECT_STRIPS and row["good"] > TRAIN_GOOD]


def bench_fabric(
    aitex_root: Path, fabric: str, work: Path, config: Path, overrides: list[str], seed: int | None = None
) -> dict[str, Any]:
    tag = fabric if seed is None else f"{fabric}_seed{seed}"
    overrides = list(overrides) if seed is None else [*overrides, f"seed={seed}"]
    data = work / f"fabric{fabric}"
    run_dir, model_dir = work / f"run{tag}", work / "models" / f"aitex{tag}" / "bench"
    for previous in (data, run_dir, model_dir):  # a re-run starts clean (training refuses to
        shutil.rmtree(previous, ignore_errors=True)  # overwrite an unfinished run)
    convert_aitex(aitex_root, data, fabric=fabric, train_good=TRAIN_GOOD)
    scored = onboard_and_score(config, data, run_dir, model_dir, overrides, name=f"aitex{fabric}", bench="qc bench aitex")
    return {"fabric": fabric, "seed": seed, **scored}


def onboard_and_score(
    config: Path, data: Path, run_dir: Path, model_dir: Path, overrides: list[str], *, name: str, bench: str
) -> dict[str, Any]:
    """Train, calibrate and export as ``qc train`` and ``qc export`` do, then score the exported model
    on ``data``'s test split as ``qc eval`` does: the figures (COLUMNS) and what onboarding cost."""
    command = shlex.join(["qc", "train", "--config", str(config), "--data", str(data), "--out", str(run_dir), *overrides])
    started = time.perf_counter()
    run_train(config, data, run_dir, overrides, command)
    trained = time.perf_counter()
    run_export(run_dir, model_dir, name=name, version="bench", command=bench)
    onboarded = time.perf_counter()
    report = evaluate_model(model_dir, data)
    return {
        **{k: report.get(k) for k in COLUMNS},
        "train_s": trained - started,
        "onboarding_s": onboarded - started,
        "steps": steps_done(run_dir),
        "image_threshold": load_card(model_dir).thresholds.image,
        "test_good": report["images"]["good"],
        "test_defect": report["images"]["defect"],
        "recall_per_type": report["recall_per_type"],
        "machine": machine(),
    }


def steps_done(run_dir: Path) -> int:
    """How many optimisation steps a run made: a time-paced run makes as many as the machine
    allows in its budget, so two runs' figures compare only beside their step counts."""
    record = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    return int(record["training"]["steps_done"])


def run_aitex_benchmark(
    aitex_root: Path,
    *,
    config: Path,
    overrides: list[str],
    fabrics: list[str] | None = None,
    out_json: Path | None = None,
    work_dir: Path | None = None,
    seeds: list[int] | None = None,
) -> list[dict[str, Any]]:
    """One row per fabric and seed (``seeds`` None: the config's own seed, one run per fabric)."""
    fabrics = fabrics or eligible_fabrics(aitex_root)
    rows = []
    with tempfile.TemporaryDirectory(prefix="qc-bench-aitex-") as tmp:
        work = Path(work_dir or tmp)
        for fabric in fabrics:
            for seed in seeds or [None]:
                rows.append(bench_fabric(aitex_root, fabric, work, config, overrides, seed))
                print(format_table(rows[-1:]), flush=True)
                if out_json:  # after every run: a bench stopped after hours keeps what it measured
                    write_results(out_json, config, overrides, seeds, rows)
    return rows


def write_results(
    out_json: Path, config: Path, overrides: list[str], seeds: list[int] | None, rows: list[dict[str, Any]]
) -> None:
    result = {"config": str(config), "overrides": overrides, "seeds": seeds, "rows": rows}
    if seeds and len(seeds) > 1:
        result["summary"] = summarise(rows)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_json, result)


def format_summary(summary: list[dict[str, Any]]) -> str:
    names = ("img AUROC", "tile AUROC", "px AUROC", "AUPRO", "FRR")
    head = f"{'fabric':>6} {'runs':>4} " + " ".join(f"{name:>19}" for name in names)
    lines = [head + "   (mean [min-max] over seeds)"]
    for s in summary:
        cells = []
        for key in ("image_auroc", "tile_auroc", "pixel_auroc", "aupro", "false_reject_rate"):
            v = s[key]
            cells.append(f"{'n/a':>19}" if v is None else f"{v['mean']:.3f} [{v['min']:.3f}-{v['max']:.3f}]".rjust(19))
        lines.append(f"{s['fabric']:>6} {s['runs']:>4} " + " ".join(cells))
    return "\n".join(lines)


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'fabric':>6} {'seed':>4} {'img AUROC':>9} {'tile AUROC':>10} {'px AUROC':>8} {'AUPRO':>6} {'FRR':>5} "
        f"{'recall':>6} {'onboard s':>9} {'steps':>5}  machine"
    )
    lines = [head]
    for r in rows:
        fmt = lambda v: "  n/a" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(
            f"{r['fabric']:>6} {'-' if r.get('seed') is None else r['seed']:>4} {fmt(r['image_auroc']):>9} {fmt(r.get('tile_auroc')):>10} {fmt(r['pixel_auroc']):>8} {fmt(r['aupro']):>6} "
            f"{fmt(r['false_reject_rate']):>5} {fmt(r['recall']):>6} {r['onboarding_s']:>9.0f} "
            f"{r.get('steps', '-'):>5}  {r['machine']}"
        )
    return "\n".join(lines)
