"""The training package's ``qc`` subcommands: ``qc train``, ``qc export`` and ``qc bench``.

``qc.cli`` names this module by string and calls ``add_commands`` while it builds its parser; the
handlers import torch and the training code only when they run, so ``qc --help`` never loads torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from qc.cli import EXIT_OK, CommandGroups, UserError, command_line

AITEX_DIR_VARIABLE = "QC_AITEX_DIR"  # where `qc bench aitex` finds the AITEX data without --data


def cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    from training.commands import TrainingError, run_train

    try:
        run_dir = run_train(
            args.config, args.data, args.out, args.overrides, command_line(argv), resume=args.resume
        )
    except TrainingError as exc:
        raise UserError(str(exc)) from exc
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone wrote the run
        print(f"trained: {run_dir}")
    return EXIT_OK


def cmd_train_types(args: argparse.Namespace, argv: list[str]) -> int:
    from qc.overrides import ConfigError
    from training.config import TrainingError
    from training.types.config import load_types_config
    from training.types.run import run_train_types

    try:
        config = load_types_config(args.config, args.overrides)
        if args.detector is not None:
            config = config.model_copy(update={"detector": args.detector})
        result = run_train_types(args.data, args.synthetic, args.out, config, command_line(argv))
    except (TrainingError, ConfigError) as exc:
        raise UserError(str(exc)) from exc
    print(
        f"trained types: {args.out}: {len(result.types)} types, held-back accuracy "
        f"{result.held_out_accuracy:.3f} on {result.held_out_regions} regions, min_confidence "
        f"{result.min_confidence:.2f} ({result.duration_s:.0f} s)"
    )
    return EXIT_OK


def cmd_export(args: argparse.Namespace, argv: list[str]) -> int:
    from training.commands import TrainingError, run_export
    from training.types.run import is_types_run

    if is_types_run(args.run_dir):
        from training.types.export import export_types

        if args.int8:
            raise UserError(f"{args.run_dir} is a train-types run: --int8 applies to a detector run")
        try:
            head = export_types(args.run_dir, args.out, command=command_line(argv))
        except TrainingError as exc:
            raise UserError(str(exc)) from exc
        print(f"exported type head ({', '.join(head.types)}) into {args.out}")
        return EXIT_OK
    try:
        out = run_export(
            args.run_dir, args.out, name=args.name, version=args.version, command=command_line(argv)
        )
        if args.int8:
            from training.quantize import quantize_export

            report = quantize_export(out, args.run_dir, force=args.force)
            print(
                f"int8: image AUROC {report['auroc_fp32']:.4f} fp32 -> {report['auroc_int8']:.4f} int8 "
                f"on {report['eval_tiles']} held-back tiles"
            )
    except TrainingError as exc:
        raise UserError(str(exc)) from exc
    print(f"exported: {out}")
    return EXIT_OK


BENCH_SCRIPTS = {
    "inference": "bench_inference.py",
    "edge": "bench_edge.py",
    "synth": "bench_synth.py",
    "api": "bench_api.py",
    "types": "bench_types.py",
    "line": "bench_line.py",
    "memory-bank": "bench_memory_bank.py",
    "position": "bench_position.py",
    "margin": "bench_margin.py",
    "smoothing": "bench_smoothing.py",
    "flips": "bench_flips.py",
    "image-score": "bench_image_score.py",
    "norms": "bench_norms.py",
    "hard-negatives": "bench_hard_negatives.py",
    "onboarding": "bench_onboarding.py",
    "self-similarity": "bench_self_similarity.py",
}


def run_bench_script(name: str, script_args: list[str]) -> int:
    """The benchmarks live as plain scripts under bench/ in the repository; run one in-process."""
    import runpy

    script = Path(__file__).resolve().parents[1] / "bench" / BENCH_SCRIPTS[name]
    if not script.is_file():
        raise UserError(f"{script} not found: benchmarks run from a checkout of the repository")
    saved = sys.argv
    sys.argv = [str(script), *script_args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved
    return EXIT_OK


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds wants comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds wants distinct integers, got {text!r}")
    return seeds


def cmd_bench(args: argparse.Namespace, argv: list[str]) -> int:
    if args.suite == "types":  # its AITEX section reads the same --data (or $QC_AITEX_DIR)
        return run_bench_script("types", [*(["--data", str(args.data)] if args.data else []), *args.overrides])
    if args.suite != "aitex":
        if args.summarise:
            raise UserError(f"--summarise belongs to aitex; {args.suite} takes its own after --")
        return run_bench_script(args.suite, args.overrides)
    from training.benchmark import format_summary, format_table, run_aitex_benchmark, summarise

    if args.summarise:
        return summarise_aitex_results(args)

    if args.data is None:
        if not os.environ.get(AITEX_DIR_VARIABLE):
            raise UserError(f"aitex needs --data DIR (the AITEX folder) or ${AITEX_DIR_VARIABLE}")
        args.data = Path(os.environ[AITEX_DIR_VARIABLE])
    if not args.data.is_dir():
        raise UserError(f"{args.data}: no AITEX folder there")
    rows = run_aitex_benchmark(
        args.data,
        config=args.config,
        overrides=args.overrides,
        fabrics=args.fabrics,
        out_json=args.json,
        work_dir=args.work_dir,
        seeds=args.seeds,
    )
    print("\nAITEX protocol (train on 12 good strips per fabric, test on the rest):")
    print(format_table(rows))
    if args.seeds and len(args.seeds) > 1:
        print(format_summary(summarise(rows)))
    return EXIT_OK


AITEX_SETTINGS = ("config", "overrides")
"""What ``qc bench aitex`` result files summarised together must share."""


def summarise_aitex_results(args: argparse.Namespace) -> int:
    """Trains nothing: the rows of earlier result files and each fabric's mean [worst] over them."""
    from training.bench_summary import ResultFilesRefused, format_mean_worst, rows_of
    from training.benchmark import format_table

    if args.overrides or args.fabrics or args.seeds:
        raise UserError("--summarise trains nothing: give it result files, not overrides, --fabrics or --seeds")
    try:
        rows = rows_of(args.summarise, bench="aitex", settings=AITEX_SETTINGS)
    except ResultFilesRefused as refused:
        raise UserError(str(refused)) from None
    print(format_table(rows))
    print("\n" + format_mean_worst(rows))
    return EXIT_OK


def add_commands(groups: CommandGroups) -> None:
    p = groups.top.add_parser("train", help="train a detector from good images (needs the train extra)")
    p.add_argument("--config", type=Path, default=Path("configs/train/default.yaml"))
    p.add_argument("--data", type=Path, required=True, help="dataset root (MVTec layout or a folder)")
    p.add_argument("--out", type=Path, required=True, help="run folder to write")
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in --out from its checkpoint")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(handler=cmd_train)

    p = groups.top.add_parser(
        "train-types",
        help="train the defect-type classifier on labelled regions (needs the train extra)",
        description="Regions are the connected components of the masks of train/<type>/ images "
        "(ground_truth/<type>/<stem>_mask.png) of each --data root (MVTec layout, or a `qc data "
        "export-feedback` folder; test/ is never read), plus --synthetic N tiles of each of the synthetic "
        "generator's defect types (synthetic_panel_share=S: that share of the fabric types' as whole line panels). "
        "With --detector MODEL_DIR each image also gives the regions that detector finds on its defect, as "
        "the station sees them. The folder name is the type. Export with `qc export RUN --out MODEL_DIR`.",
    )
    p.add_argument("--data", type=Path, nargs="+", default=[], metavar="ROOT", help="labelled dataset roots")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="synthetic tiles per defect type (default 0)")
    p.add_argument(
        "--detector", type=Path, default=None, metavar="MODEL_DIR",
        help="also learn the regions this model's detector finds on each image's defect, with its heatmap "
        "as the hint, as the station sees them (the config's detector key; default: ground truth only)",
    )
    p.add_argument("--config", type=Path, default=Path("configs/train/types.yaml"))
    p.add_argument("--out", type=Path, required=True, help="run folder to write")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(handler=cmd_train_types)

    p = groups.top.add_parser(
        "export",
        help="export a trained run to ONNX with its model card",
        description="A `qc train` run becomes models/<name>/<version>/{model.onnx, model.json}. A "
        "`qc train-types` run is added to the existing model in --out as types.onnx with a type_head "
        "record on its card; the detector's model.onnx is left as it is.",
    )
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="models/<name>/<version>")
    p.add_argument("--name", default=None, help="model name (default: from --out)")
    p.add_argument("--version", default=None, help="model version (default: from --out)")
    p.add_argument("--int8", action="store_true", help="quantize to int8 (static, QDQ) if accuracy holds")
    p.add_argument("--force", action="store_true", help="with --int8: keep int8 even if AUROC drops")
    p.set_defaults(handler=cmd_export)

    p = groups.top.add_parser(
        "bench",
        help="benchmarks: aitex (accuracy protocol), inference, edge, synth, api, types, norms, ...",
        description="aitex runs the accuracy protocol of docs/architecture.md (extra words are training "
        "config overrides); inference, edge, synth, api, types and line run bench/bench_<suite>.py (extra words are "
        "its arguments, e.g. `qc bench inference -- models/default --threads 2`).",
    )
    p.add_argument("suite", choices=["aitex", *BENCH_SCRIPTS])
    p.add_argument(
        "--data", type=Path, default=None,
        help=f"aitex: the AITEX folder (default: ${AITEX_DIR_VARIABLE}, else it must be given)",
    )
    p.add_argument("--config", type=Path, default=Path("configs/train/default.yaml"))
    p.add_argument(
        "--fabrics",
        type=lambda text: [f.strip() for f in text.split(",") if f.strip()],
        default=None,
        help="comma-separated fabric codes (default: every fabric with >= 5 defect strips)",
    )
    p.add_argument(
        "--seeds",
        type=seed_list,
        default=None,
        help="comma-separated training seeds: every fabric runs once per seed, with a mean/min/max "
        "summary (default: the config's seed, once)",
    )
    p.add_argument("--json", type=Path, default=Path("bench/results/aitex.json"))
    p.add_argument("--work-dir", type=Path, default=None, help="keep datasets, runs and models here")
    p.add_argument(
        "--summarise", type=Path, nargs="+", default=None, metavar="RESULT_JSON",
        help="aitex: train nothing; summarise the rows of these earlier result files of one configuration "
        "(a bench run in parts) as each fabric's mean [worst] over its seeds",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="training config overrides")
    p.set_defaults(handler=cmd_bench)
