"""``qc bench hard-negatives``: what the searches for hard negatives cost a time-paced training.

Trains the configuration on DATA (as ``qc train`` does, time-paced) once per asked-for search
budget (``data.hard_negative_search_tiles``) and prints, for each: the steps the time budget
reached, how many searches ran and the seconds they took (their share of the training time), and
the onboarding time (train + calibrate). The searches are timed by wrapping the loop's search
function in this process; nothing else changes. A budget of 0 means unbounded: every good image
in every search, as before the budget existed.

Run: qc bench hard-negatives -- --data DATA [--budgets 256,0] [--json FILE] [overrides...]
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

import training.train as training_loop  # noqa: E402
from qc.machine import machine  # noqa: E402
from training.commands import run_train  # noqa: E402

UNBOUNDED_TILES = 10**9


class TimedSearches:
    """The loop's search function, counted and timed."""

    def __init__(self, search) -> None:
        self.search, self.count, self.seconds = search, 0, 0.0

    def __call__(self, *args) -> None:
        started = time.perf_counter()
        self.search(*args)
        self.seconds += time.perf_counter() - started
        self.count += 1


def one_run(config: Path, data: Path, out: Path, budget_tiles: int, overrides: list[str]) -> dict:
    timed = TimedSearches(training_loop.mine_hard_negatives)
    training_loop.mine_hard_negatives = timed
    try:
        run_train(config, data, out, [*overrides, f"data.hard_negative_search_tiles={budget_tiles}"],
                  command="qc bench hard-negatives")
    finally:
        training_loop.mine_hard_negatives = timed.search
    record = json.loads((out / "run.json").read_text())
    loop_s = record["training"]["loop_duration_s"]
    return {
        "search_tiles": 0 if budget_tiles == UNBOUNDED_TILES else budget_tiles,
        "steps": record["training"]["steps_done"],
        "training_s": round(loop_s, 3),
        "searches": timed.count,
        "search_s": round(timed.seconds, 3),  # tiny runs search in milliseconds
        "search_share": round(timed.seconds / max(loop_s, 1e-9), 4),
        "train_and_calibrate_s": round(record["duration_s"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a dataset folder (train/good/...)")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "train" / "default.yaml")
    parser.add_argument("--budgets", default="256,0", help="comma-separated search budgets in tiles; 0: unbounded")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("overrides", nargs="*", help="config overrides (key=value), as for qc train")
    args = parser.parse_args()
    budgets = [int(b) or UNBOUNDED_TILES for b in args.budgets.split(",")]
    images = len([p for p in (args.data / "train" / "good").iterdir() if p.is_file()])
    print(f"{args.data}: {images} good images; {machine()}")
    print(f"{'search tiles':>12} {'steps':>6} {'training s':>10} {'searches':>8} {'search s':>8} {'share':>6} "
          f"{'train+calibrate s':>17}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, budget in enumerate(budgets):
            row = one_run(args.config, args.data, Path(tmp) / f"run{i}", budget, args.overrides)
            rows.append(row)
            print(f"{row['search_tiles'] or 'all':>12} {row['steps']:>6} {row['training_s']:>10.1f} {row['searches']:>8} "
                  f"{row['search_s']:>8.1f} {row['search_share']:>6.1%} {row['train_and_calibrate_s']:>17}", flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {"data": str(args.data), "images": images, "machine": machine(), "overrides": args.overrides,
                  "rows": rows}
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
