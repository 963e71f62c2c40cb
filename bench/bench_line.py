"""``qc bench line``: what the shipped model does on the simulated line, by fabric pattern.

Seeded 480x640 line panels (qc.synth.generate_panel, the frames `make run` inspects): ``--panels``
good ones and as many with one fabric defect each (the types in turn), through the station's path
(the model folder's InspectionModel, qc.decision.decide with configs/edge/default.yaml's rules).
Printed per fabric pattern of the generator and overall: the false-reject rate on good panels, the
recall on defective ones, and the image AUROC of the model's score. Hundreds of panels make these
figures far steadier than eight test strips of a fabric, and the per-pattern split shows where a
multi-fabric detector's false alarms come from (issue 12).

Also a what-if the station does NOT do: where the model has a type head that knows the detector's
false alarms (``not_a_defect``), the rates if a failed unit all of whose regions the head calls
``not_a_defect`` were passed instead.

Run: qc bench line [--model models/default] [--panels 240] [--seed 4242] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from qc.decision import decide  # noqa: E402
from qc.defect_types import NOT_A_DEFECT  # noqa: E402
from qc.inference import resolve_model_dir  # noqa: E402
from qc.inspection_model import InspectionModel  # noqa: E402
from qc.metrics import auroc  # noqa: E402
from qc.synth import FABRIC_DEFECTS, generate_panel  # noqa: E402

SIZE_PX = (480, 640)  # configs/edge/default.yaml's source.size_px
GOOD, DEFECTIVE = 0, 1  # the panel streams: (seed, stream, index)


def all_false_alarms(model: InspectionModel, image: np.ndarray, heatmap: np.ndarray, decision) -> bool:
    """Whether the model's type head calls every region of a failed unit not_a_defect."""
    head = model.type_classifier
    if head is None or NOT_A_DEFECT not in head.types:
        return False
    probabilities = head.region_probabilities(image, heatmap, [d.box for d in decision.defects], decision.pixel_threshold)
    return bool((probabilities.argmax(1) == head.types.index(NOT_A_DEFECT)).all())


def inspect_panels(model: InspectionModel, rules, panels: int, seed: int) -> list[dict]:
    rows = []
    for stream in (GOOD, DEFECTIVE):
        for index in range(panels):
            kind = FABRIC_DEFECTS[index % len(FABRIC_DEFECTS)] if stream == DEFECTIVE else None
            sample = generate_panel(np.random.default_rng([seed, stream, index]), size_px=SIZE_PX,
                                    defect_probability=float(stream), defect=kind)
            if stream == DEFECTIVE and sample.defect_type is None:
                continue  # the type did not fit this panel
            result = model.infer(sample.image)
            decision = decide(result, model.card, rules=rules)
            failed = decision.verdict == "fail"
            rows.append({
                "fabric": sample.fabric,
                "defective": stream == DEFECTIVE,
                "score": float(result.score),
                "failed": failed,
                "head_says_false_alarm": failed and all_false_alarms(model, sample.image, result.heatmap, decision),
            })
    return rows


def rates(rows: list[dict], *, second_stage: bool = False) -> dict:
    def fails(r: dict) -> bool:
        return r["failed"] and not (second_stage and r["head_says_false_alarm"])

    good = [r for r in rows if not r["defective"]]
    bad = [r for r in rows if r["defective"]]
    labels = np.array([r["defective"] for r in rows])
    scores = np.array([r["score"] for r in rows])
    return {
        "good": len(good),
        "defective": len(bad),
        "false_reject_rate": float(np.mean([fails(r) for r in good])) if good else None,
        "recall": float(np.mean([fails(r) for r in bad])) if bad else None,
        "image_auroc": auroc(scores, labels) if good and bad else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--panels", type=int, default=240, help="good panels, and as many with a defect")
    parser.add_argument("--seed", type=int, default=4242, help="the panels' seed (the simulated line itself uses 0)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "line.json")
    args = parser.parse_args()
    if args.panels < 1:
        parser.error("--panels must be at least 1")
    from edge.config import load_config

    station = load_config(REPO / "configs" / "edge" / "default.yaml", [])
    model_dir = resolve_model_dir(args.model)
    model = InspectionModel(model_dir, threads=station.pipeline.inference_threads)
    started = time.perf_counter()
    rows = inspect_panels(model, station.rules, args.panels, args.seed)
    fabrics = sorted({r["fabric"] for r in rows})
    result = {
        "model": f"{model.card.name} {model.card.version} ({model_dir})",
        "machine": f"{os.cpu_count()} CPUs",
        "panels": args.panels,
        "seed": args.seed,
        "size_px": list(SIZE_PX),
        "rules": "configs/edge/default.yaml",
        "overall": rates(rows),
        "by_fabric": {f: rates([r for r in rows if r["fabric"] == f]) for f in fabrics},
        "what_if_head_passes_its_false_alarms": rates(rows, second_stage=True),
        "seconds": time.perf_counter() - started,
    }
    print(f"simulated line, {result['model']}: {args.panels} good and {args.panels} defective panels asked "
          f"(seed {args.seed}, {SIZE_PX[0]}x{SIZE_PX[1]}), {result['seconds']:.0f} s")
    print(f"{'fabric':>14} {'good':>5} {'FRR':>6} {'defective':>9} {'recall':>7} {'AUROC':>6}")
    for name, row in [*result["by_fabric"].items(), ("all", result["overall"])]:
        cells = [f"{row[k]:.3f}" if row[k] is not None else "  -  " for k in ("false_reject_rate", "recall", "image_auroc")]
        print(f"{name:>14} {row['good']:>5} {cells[0]:>6} {row['defective']:>9} {cells[1]:>7} {cells[2]:>6}")
    what_if = result["what_if_head_passes_its_false_alarms"]
    print(f"what-if (not what the station does): passing failed units whose regions the type head all calls "
          f"{NOT_A_DEFECT}: FRR {what_if['false_reject_rate']:.3f}, recall {what_if['recall']:.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
