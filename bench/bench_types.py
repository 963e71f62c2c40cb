"""``qc bench types``: how well the defect-type head names defects, and what it costs per region.

(1) synthetic: trained on regions the synthetic generator draws for ``qc train-types --synthetic``,
    exported into a copy of the default model, tested on the test/<type> split (with masks) that
    qc.synth.write_mvtec_dataset writes from another seed; the test images are never trained on.
(2) AITEX dev: leave-one-strip-out over the labelled defect strips of every dev fabric, for the types
    with at least MIN_STRIPS strips. Retraining the network 60 times would take an hour on 2 cores,
    so each fold fits a light head (multinomial logistic regression) over fixed features: those of
    the network trained in (1) on synthetic regions only, so no fold's features have seen its
    held-out strip. A strip's type is the head's mean probability over its regions. Compared with
    the majority-class baseline. The detector's protocol and its test split are untouched.
(3) latency: TypeClassifier.classify on one region of a 256 px tile, onnxruntime on 2 threads.
(4) line: what the station names on the simulated line. Seeded 480x640 line panels
    (qc.synth.generate_panel), each with one fabric defect, the types in turn (the line draws no
    seam defects); the station's path exactly: the model folder's InspectionModel, qc.decision.decide
    with configs/edge/default.yaml's rules, then the station's DefectGrading (the type head).
    Reported: detector recall (frames that fail); on failed frames the top type of the region whose
    box holds the most true-defect pixels ("located"; a failed frame none of whose regions touches
    the defect counts as wrong), and of the highest-peak region; the share of regions labelled
    (>= min_confidence) and the labels' precision (a label on a region off the defect is wrong).

Run: qc bench types [--data AITEX_DIR] [key=value ...], or the script itself:
     python bench/bench_types.py [--data AITEX_DIR] [--synthetic N] [--run RUN] [--only synthetic|line] [--json PATH] [key=value ...]
--run RUN measures a finished `qc train-types --synthetic N` run (trained as section 1 trains) instead
of training one; --only synthetic runs sections 1 and 3 alone, a quick measure of a training change; it writes
bench/results/types-synthetic.json unless --json says otherwise, so the full result stays.
--only line [--model models/default] [--line-frames N] runs part 4 alone on a shipped model and merges
it into the JSON beside the other parts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from qc.card import load_card  # noqa: E402
from qc.data import open_dataset  # noqa: E402
from qc.decision import ONE_CLASS, Defect  # noqa: E402
from qc.defect_types import load_type_classifier  # noqa: E402
from qc.inference import resolve_model_dir  # noqa: E402
from qc.synth import DEFECTS, generate_sample, write_mvtec_dataset  # noqa: E402
from training.types.augment import plain_crops, training_batch  # noqa: E402
from training.types.config import load_types_config  # noqa: E402
from training.types.export import export_types, load_types_run  # noqa: E402
from training.types.regions import regions_of_records  # noqa: E402
from training.types.run import run_train_types  # noqa: E402
from training.types.train import as_input  # noqa: E402

MIN_STRIPS = 3  # AITEX types with fewer labelled strips cannot be held out and still be learnt
VIEWS = 8  # augmented views per training region in an AITEX fold
TEST_SEED_OFFSET = 1000  # the synthetic test split's seed, far from the training seed


def confusion(truth: list[str], predicted: list[str]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for t, p in zip(truth, predicted):
        row = table.setdefault(t, {})
        row[p] = row.get(p, 0) + 1
    return {t: dict(sorted(table[t].items())) for t in sorted(table)}


def existing_run(run_dir: Path, per_type: int, config) -> tuple[float, float]:
    """(held-back accuracy, training seconds) of a finished `qc train-types --synthetic N` run, refused
    unless it was trained the way section 1 trains: synthetic regions only, N tiles per type, this
    configuration (so a shipped head is measured without training it again)."""
    _, record, _, _ = load_types_run(run_dir)
    expected = f"synthetic generator, {per_type} images per type"
    # training.types.run.gather_regions says what the regions were: the synthetic part, then, with
    # a detector, the station's view of the same images; any other part is another --data root.
    sources = record["data"].split("; plus the regions the detector")[0]
    if not sources.startswith(expected) or ";" in sources or record["config"] != config.model_dump(mode="json"):
        raise SystemExit(f"{run_dir}: trained on {record['data']!r} with another configuration or data than "
                         f"section 1's ({expected}...), so it cannot stand for it")
    return record["held_out_accuracy"], record["duration_s"]


def bench_synthetic(
    work: Path, per_type: int, test_per_type: int, config_path: Path, overrides: list[str], run: Path | None = None
) -> tuple[dict, Path]:
    config = load_types_config(config_path, overrides)
    model_dir = work / "model"
    shutil.copytree(resolve_model_dir(REPO / "models" / "default"), model_dir)
    (model_dir / "types.onnx").unlink(missing_ok=True)
    if run is None:
        run_dir = work / "types-run"
        started = time.perf_counter()
        held_out_accuracy = run_train_types([], per_type, run_dir, config, "qc bench types").held_out_accuracy
        train_s = time.perf_counter() - started
    else:
        run_dir = run
        held_out_accuracy, train_s = existing_run(run_dir, per_type, config)
    export_types(run_dir, model_dir, command="qc bench types")
    card = load_card(model_dir)
    classifier = load_type_classifier(model_dir, card, threads=2)
    data = work / "synth-test"
    write_mvtec_dataset(data, count=1, seed=config.seed + TEST_SEED_OFFSET, test_count=test_per_type * len(DEFECTS))
    records = open_dataset(data).select(split="test", label="defect")
    regions = regions_of_records(records, min_area_px=config.min_area_px)
    probabilities = classifier.probabilities(*plain_crops(regions, classifier.crop_px))
    top = [classifier.types[k] for k in probabilities.argmax(1)]
    labelled = [kind for kind, _ in classifier.label(probabilities)]
    truth = [r.type for r in regions]
    correct = np.array([t == p for t, p in zip(truth, top)])
    kept = np.array([p != ONE_CLASS for p in labelled])
    row = {
        "train": f"synthetic generator, {per_type} images per type (seed {config.seed}), {config.steps} steps"
        + (f", {config.synthetic_panel_share:.0%} of fabric types' as line panels" if config.synthetic_panel_share else "")
        + (f", plus the regions the detector of {config.detector} finds on them" if config.detector else ""),
        "test": f"qc.synth.write_mvtec_dataset test/<type> (seed {config.seed + TEST_SEED_OFFSET}), "
        f"{len(records)} images, {len(regions)} regions",
        "train_s": train_s,
        "regions": len(regions),
        "accuracy": float(correct.mean()),
        "accuracy_labelled": float(correct[kept].mean()) if kept.any() else None,
        "left_defect_share": float(1 - kept.mean()),
        "min_confidence": card.type_head.min_confidence,
        "held_out_accuracy_in_training": held_out_accuracy,
        "run": str(run) if run else None,
        "per_type_accuracy": {t: float(np.mean([p == t for tt, p in zip(truth, top) if tt == t])) for t in sorted(set(truth))},
        "confusion": confusion(truth, labelled),
    }
    return row, run_dir


def fit_logistic(features: np.ndarray, labels: np.ndarray, n_classes: int, steps: int = 300) -> torch.nn.Linear:
    """Class-balanced multinomial logistic regression (L2), full-batch LBFGS."""
    x, y = torch.from_numpy(features), torch.from_numpy(labels)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float32)
    weights = torch.from_numpy(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0).astype(np.float32))
    head = torch.nn.Linear(features.shape[1], n_classes)
    optimiser = torch.optim.LBFGS(head.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y, weight=weights) + 1e-3 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return head


def bench_aitex(aitex: Path, run_dir: Path, config_path: Path, overrides: list[str]) -> dict:
    config = load_types_config(config_path, overrides)
    net, _, _, _ = load_types_run(run_dir)
    records = open_dataset(aitex, "aitex").select(label="defect")
    strips_per_type = Counter(r.defect_type for r in records if r.masks)
    types = sorted(t for t, n in strips_per_type.items() if n >= MIN_STRIPS)
    records = [r for r in records if r.defect_type in types]
    rng = np.random.default_rng(config.seed)

    def features(crops: np.ndarray, geometry: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net.features(torch.from_numpy(crops), as_input(net, geometry)).numpy()

    strips = []  # per strip: type, plain features of its regions, features of augmented views
    for record in records:
        regions = regions_of_records([record], min_area_px=config.min_area_px)
        if not regions:
            continue
        views = training_batch(rng, [r for r in regions for _ in range(VIEWS)], config.crop_px)
        strips.append((record.defect_type, features(*plain_crops(regions, config.crop_px)), features(*views)))
    index = {t: i for i, t in enumerate(types)}
    truth, predicted = [], []
    started = time.perf_counter()
    for held in range(len(strips)):
        train_x = np.concatenate([s[2] for i, s in enumerate(strips) if i != held])
        train_y = np.concatenate([np.full(len(s[2]), index[s[0]]) for i, s in enumerate(strips) if i != held])
        mean, std = train_x.mean(0), train_x.std(0) + 1e-6
        head = fit_logistic(((train_x - mean) / std).astype(np.float32), train_y, len(types))
        with torch.no_grad():
            probabilities = torch.softmax(head(torch.from_numpy(((strips[held][1] - mean) / std).astype(np.float32))), 1)
        truth.append(strips[held][0])
        predicted.append(types[int(probabilities.mean(0).argmax())])
    majority_type, majority_n = Counter(truth).most_common(1)[0]
    return {
        "data": str(aitex),
        "method": "leave-one-strip-out; fixed features of the synthetic-trained network (section 1), a "
        "class-balanced logistic-regression head per fold on the other strips' regions "
        f"({VIEWS} augmented views each); a strip's type = mean probability over its regions",
        "types": types,
        "strips": len(truth),
        "strips_per_type": dict(sorted(Counter(truth).items())),
        "regions": int(sum(len(s[1]) for s in strips)),
        "accuracy": float(np.mean([t == p for t, p in zip(truth, predicted)])),
        "majority_baseline": majority_n / len(truth),
        "majority_type": majority_type,
        "balanced_accuracy": float(np.mean([np.mean([p == t for tt, p in zip(truth, predicted) if tt == t]) for t in types])),
        "confusion": confusion(truth, predicted),
        "folds_s": time.perf_counter() - started,
    }


def bench_latency(model_dir: Path, repeats: int = 300) -> dict:
    classifier = load_type_classifier(model_dir, load_card(model_dir), threads=2)
    sample = generate_sample(np.random.default_rng(5), defect="hole")
    ys, xs = np.nonzero(sample.mask)
    box = (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
    defect = Defect(box=box, area_px=int(len(xs)), peak_score=1.0, mean_score=1.0)
    heat = sample.mask.astype(np.float32) / 255
    timings = {}
    for n in (1, 16):
        defects = [defect] * n
        classifier.classify(sample.image, heat, defects, 0.5)  # warm-up
        runs = []
        for _ in range(repeats // n + 20):
            started = time.perf_counter()
            classifier.classify(sample.image, heat, defects, 0.5)
            runs.append((time.perf_counter() - started) * 1000 / n)
        timings[f"ms_per_region_batch{n}"] = statistics.median(runs)
    return {"threads": 2, "crop_px": classifier.crop_px, "cpu_count": os.cpu_count(), **timings}


def format_confusion(table: dict[str, dict[str, int]]) -> str:
    lines = []
    for truth, row in table.items():
        cells = ", ".join(f"{p} {n}" for p, n in sorted(row.items(), key=lambda kv: -kv[1]))
        lines.append(f"    {truth:>15}: {cells}")
    return "\n".join(lines)


LINE_SEED = 20250  # the line part's frames; the simulated line itself (configs/edge) draws from seed 0
LINE_SIZE_PX = (480, 640)  # configs/edge/default.yaml's source.size_px


def truth_pixels_in_box(mask: np.ndarray, box: tuple[int, int, int, int]) -> int:
    x, y, w, h = box
    return int(np.count_nonzero(mask[y : y + h, x : x + w]))


def bench_line(model_dir: Path, frames: int, *, label: str | None = None, seed: int = LINE_SEED) -> dict:
    from edge.config import load_config
    from edge.line.defect_grading import DefectGrading
    from qc.decision import decide
    from qc.inspection_model import InspectionModel
    from qc.synth import FABRIC_DEFECTS, generate_panel

    station = load_config(REPO / "configs" / "edge" / "default.yaml", [])
    model = InspectionModel(resolve_model_dir(model_dir), threads=station.pipeline.inference_threads)
    classifier = model.type_classifier
    if classifier is None:
        raise SystemExit(f"{model_dir}: the model has no type head; the line part needs one")
    grading = DefectGrading(table=station.severity)
    truth, failed, located_top, peak_top = [], [], [], []
    regions = labelled = labelled_right = labelled_off = 0
    started = time.perf_counter()
    for index in range(frames):
        kind = FABRIC_DEFECTS[index % len(FABRIC_DEFECTS)]
        sample = generate_panel(np.random.default_rng([seed, index]), size_px=LINE_SIZE_PX,
                                defect_probability=1.0, defect=kind)
        if sample.defect_type is None:
            continue  # the type did not fit this panel: no defect to name
        truth.append(kind)
        result = model.infer(sample.image)
        decision = decide(result, model.card, px_per_mm=station.station.px_per_mm, rules=station.rules)
        decision = grading.apply(sample.image, result.heatmap, decision, model)
        failed.append(decision.verdict == "fail")
        if decision.verdict != "fail":
            located_top.append(None)
            peak_top.append(None)
            continue
        boxes = [d.box for d in decision.defects]
        top = classifier.region_probabilities(sample.image, result.heatmap, boxes, decision.pixel_threshold).argmax(1)
        overlap = [truth_pixels_in_box(sample.mask, box) for box in boxes]
        best = int(np.argmax(overlap))
        located_top.append(classifier.types[top[best]] if overlap[best] > 0 else "(off the defect)")
        peak_top.append(classifier.types[top[0]])  # decide lists regions highest peak first
        for defect, pixels in zip(decision.defects, overlap):
            regions += 1
            if defect.type != ONE_CLASS:
                labelled += 1
                labelled_right += pixels > 0 and defect.type == kind
                labelled_off += pixels == 0
    on_failed = [(t, p) for t, p, f in zip(truth, located_top, failed) if f]
    return {
        "model": label or str(resolve_model_dir(model_dir)),
        "frames": len(truth),
        "frames_asked": frames,
        "seed": seed,
        "size_px": list(LINE_SIZE_PX),
        "rules": "configs/edge/default.yaml",
        "detector_recall": float(np.mean(failed)) if failed else 0.0,
        "failed_frames": len(on_failed),
        "top_type_accuracy_located": float(np.mean([t == p for t, p in on_failed])) if on_failed else 0.0,
        "top_type_accuracy_highest_peak": float(np.mean([t == p for t, p, f in zip(truth, peak_top, failed) if f]))
        if on_failed else 0.0,
        "regions": regions,
        "labelled_share": labelled / regions if regions else 0.0,
        "left_defect_share": 1 - labelled / regions if regions else 0.0,
        "label_precision": labelled_right / labelled if labelled else None,
        "labels_off_the_defect": labelled_off,  # of the wrong labels, those on a region that misses the defect
        "labels": labelled,
        "per_type_accuracy_located": {
            t: float(np.mean([p == t for tt, p in on_failed if tt == t])) for t in sorted({t for t, _ in on_failed})
        },
        "per_type_recall": {t: float(np.mean([f for tt, f in zip(truth, failed) if tt == t])) for t in sorted(set(truth))},
        "confusion_located": confusion([t for t, _ in on_failed], [p for _, p in on_failed]),
        "seconds": time.perf_counter() - started,
    }


def print_line(line: dict) -> None:
    print(f"\n(4) simulated line, {line['model']}: {line['frames']} panels with a defect (seed {line['seed']}, "
          f"{line['size_px'][0]}x{line['size_px'][1]}), {line['seconds']:.0f} s")
    precision = "n/a" if line["label_precision"] is None else f"{line['label_precision']:.3f}"
    print(f"    detector recall {line['detector_recall']:.3f} ({line['failed_frames']} failed); on failed frames top type "
          f"{line['top_type_accuracy_located']:.3f} (region on the defect), "
          f"{line['top_type_accuracy_highest_peak']:.3f} (highest-peak region)")
    print(f"    regions {line['regions']}: labelled {line['labelled_share']:.1%}, labels right {precision} "
          f"({line['labels_off_the_defect']} of {line['labels']} labels on a region off the defect); "
          f"left \"defect\" {line['left_defect_share']:.1%}")
    print("    per-type top type (region on the defect): "
          + ", ".join(f"{t} {a:.2f}" for t, a in line["per_type_accuracy_located"].items()))
    print("    confusion (truth: top type):\n" + format_confusion(line["confusion_located"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("QC_AITEX_DIR"), help="AITEX folder (default $QC_AITEX_DIR; without it, section 2 is skipped)")
    parser.add_argument("--synthetic", type=int, default=400, help="synthetic training images per type (the Makefile's)")
    parser.add_argument("--test-per-type", type=int, default=20, help="synthetic test images per type")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "train" / "types.yaml")
    parser.add_argument("--only", choices=["synthetic", "line"], default=None,
                        help="synthetic: sections 1 and 3 alone (no AITEX); line: part 4 alone, on --model")
    parser.add_argument("--run", type=Path, help="measure this finished `qc train-types --synthetic N` run "
                        "(same N and configuration) instead of training one")
    parser.add_argument("--json", type=Path, help="where the results go (default bench/results/types.json, "
                        "types-synthetic.json with --only synthetic)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default", help="--only line: the model folder")
    parser.add_argument("--line-frames", type=int, default=240, help="simulated-line panels with a defect (0: skip part 4)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="types config overrides")
    args = parser.parse_args()
    if args.json is None:
        args.json = REPO / "bench" / "results" / ("types-synthetic.json" if args.only == "synthetic" else "types.json")
    if args.only == "line":
        line = bench_line(args.model, args.line_frames)
        print_line(line)
        previous = json.loads(args.json.read_text(encoding="utf-8")) if args.json.is_file() else {}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**previous, "line": line}, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json} (part 4; the other parts kept)")
        return
    results: dict = {"machine": f"{os.cpu_count()} CPUs", "config": str(args.config), "overrides": args.overrides}
    with tempfile.TemporaryDirectory(prefix="qc-bench-types-") as tmp:
        work = Path(tmp)
        synthetic, run_dir = bench_synthetic(
            work, args.synthetic, args.test_per_type, args.config, args.overrides, args.run
        )
        results["synthetic"] = synthetic
        print(f"\n(1) synthetic types: trained on {synthetic['train']} in {synthetic['train_s']:.0f} s")
        print(f"    test: {synthetic['test']}")
        print(f"    accuracy (top type) {synthetic['accuracy']:.3f}; labelled (>= min_confidence "
              f"{synthetic['min_confidence']:.2f}) {1 - synthetic['left_defect_share']:.1%} of regions, of which "
              f"{synthetic['accuracy_labelled']:.3f} correct; left \"defect\" {synthetic['left_defect_share']:.1%}")
        print("    per-type accuracy: " + ", ".join(f"{t} {a:.2f}" for t, a in synthetic["per_type_accuracy"].items()))
        print("    confusion (truth: labels given):\n" + format_confusion(synthetic["confusion"]))
        if args.only == "synthetic":
            print("\n(2) AITEX: skipped (--only synthetic)")
        elif args.data and Path(args.data).is_dir():
            aitex = bench_aitex(Path(args.data), run_dir, args.config, args.overrides)
            results["aitex"] = aitex
            print(f"\n(2) AITEX dev, leave-one-strip-out over {aitex['strips']} strips ({aitex['regions']} regions), "
                  f"types {', '.join(aitex['types'])}")
            print(f"    accuracy {aitex['accuracy']:.3f} (balanced {aitex['balanced_accuracy']:.3f}) vs majority-class "
                  f"baseline {aitex['majority_baseline']:.3f} ({aitex['majority_type']}); folds {aitex['folds_s']:.0f} s")
            print("    confusion (truth: predicted):\n" + format_confusion(aitex["confusion"]))
        else:
            print("\n(2) AITEX: skipped (no --data and no $QC_AITEX_DIR)")
        results["latency"] = latency = bench_latency(work / "model")
        print(f"\n(3) latency, onnxruntime on 2 threads, crop {latency['crop_px']} px: "
              f"{latency['ms_per_region_batch1']:.2f} ms for one region, "
              f"{latency['ms_per_region_batch16']:.2f} ms per region in a unit of 16")
        if args.line_frames > 0:  # the model the synthetic part trained: its head on the line
            results["line"] = line = bench_line(work / "model", args.line_frames, label="part 1's model (the default detector + its head)")
            print_line(line)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
