"""The ``qc`` command line: one entry point, one subcommand per job.

The core's own commands are here; the training package and the station add theirs (``qc train``,
``qc edge``, ...) through ``add_commands`` in the modules ``PACKAGE_COMMANDS`` names. They are named
by string and imported while the parser is built, so qc/ imports neither package and the arrows
stay one-way: training -> qc <- edge. Their handlers import heavy code (torch) only when they run.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A problem the user can fix (bad path, bad config): printed without a traceback, exit 2."""


PACKAGE_COMMANDS = ("training.cli", "edge.cli")  # each has add_commands(CommandGroups)


@dataclass(frozen=True)
class CommandGroups:
    """Where a package adds its subcommands: ``qc <top>`` and ``qc data <data>``."""

    top: argparse._SubParsersAction
    data: argparse._SubParsersAction


def command_line(argv: list[str]) -> str:
    return shlex.join(["qc", *argv])


def cmd_synth(args: argparse.Namespace, argv: list[str]) -> int:
    from qc.synth import write_gallery, write_mvtec_dataset

    if args.gallery:
        print(f"gallery written to {write_gallery(args.gallery, seed=args.seed)}")
        if args.out is None:
            return EXIT_OK
    if args.out is None:
        raise UserError("--out DIR is needed (or --gallery FILE.png alone)")
    if args.count < 1:
        raise UserError("--count must be at least 1")
    try:
        summary = write_mvtec_dataset(
            args.out,
            count=args.count,
            seed=args.seed,
            size_px=args.size,
            overwrite=args.overwrite,
            panels=args.panels,
            train_defects=args.train_defects,
            fabrics=[name.strip() for name in args.fabrics.split(",")] if args.fabrics is not None else None,
            one_style=args.one_style,
            web_edges=args.web_edges,
        )
    except (FileExistsError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    print(f"wrote synthetic dataset to {args.out}: {summary}")
    return EXIT_OK


def cmd_data(args: argparse.Namespace, argv: list[str]) -> int:
    import json

    from qc.data import DatasetError

    try:
        if args.data_command == "info":
            from qc.data.info import dataset_info, format_info

            info = dataset_info(args.root, layout=args.layout)
            print(json.dumps(info, indent=2) if args.json else format_info(info))
            return EXIT_FAILED if info["problems"] else EXIT_OK
        if args.data_command == "merge":
            from qc.data.merge import merge_datasets

            print(json.dumps(merge_datasets(args.sources, args.out, copy=args.copy), indent=2))
            return EXIT_OK
        if args.data_command == "convert":
            from qc.data.convert import convert_aitex

            summary = convert_aitex(
                args.src, args.out, fabric=args.fabric, train_good=args.train_good, skip_bad=args.skip_bad
            )
        else:
            from qc.data.tile import tile_dataset

            summary = tile_dataset(
                args.root, args.out, tile=args.tile, overlap=args.overlap, skip_bad=args.skip_bad
            )
    except DatasetError as exc:
        raise UserError(str(exc)) from exc
    print(json.dumps(summary, indent=2))
    return EXIT_OK


def cmd_predict(args: argparse.Namespace, argv: list[str]) -> int:
    from qc.card import ModelRefused
    from qc.predict import predict_paths

    try:
        summary = predict_paths(
            args.model_dir,
            args.paths,
            args.out,
            save_heatmaps=args.save_heatmaps,
            threads=args.threads,
            px_per_mm=args.px_per_mm,
        )
    except ModelRefused as exc:
        raise UserError(f"model refused: {exc}") from exc
    print(
        f"{summary.processed} image(s) inspected, {summary.failed} unreadable; "
        f"results in {summary.results_path}"
    )
    return EXIT_FAILED if summary.failed or not summary.processed else EXIT_OK


def cmd_eval(args: argparse.Namespace, argv: list[str]) -> int:
    import json

    from qc.card import ModelRefused
    from qc.data import DatasetError
    from qc.evaluate import evaluate_model, format_report, record_in_card

    try:
        report = evaluate_model(args.model_dir, args.data, threads=args.threads, skip_bad=args.skip_bad)
    except (DatasetError, ModelRefused) as exc:
        raise UserError(str(exc)) from exc
    print(format_report(report))
    if args.report:
        from qc.eval_report import write_report

        print(f"report folder: {write_report(report, args.model_dir, args.report, threads=args.threads)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.record:
        try:
            path = record_in_card(args.model_dir, report, prefix=args.record_as)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        print(f"metrics recorded in {path}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace, argv: list[str]) -> int:
    import json

    from qc.card import ModelRefused, load_card
    from qc.registry import list_models, promote, verify_model

    try:
        if args.models_command == "list":
            for m in list_models(args.root):
                print(f"{'*' if m.current else ' '} {m.name:<20} {m.version:<12} {m.path}")
        elif args.models_command == "show":
            print(json.dumps(_card_for_reading(load_card(args.path)), indent=2))
        elif args.models_command == "verify":
            card = verify_model(args.path)
            print(f"ok: {card.name} {card.version} (sha256 {card.onnx_sha256[:12]}…)")
        else:
            path = promote(args.root, args.name, args.version)
            print(f"promoted: {path}")
    except ModelRefused as exc:
        raise UserError(str(exc)) from exc
    return EXIT_OK


def _card_for_reading(card) -> dict:
    """The card as JSON, with a fixed camera's one factor per column (thousands) summarised."""
    from qc.position import quieted_columns

    shown = card.model_dump(mode="json")
    if card.position is not None:
        scale = card.position.scale
        shown["position"]["scale"] = (
            f"{len(scale)} factors, {quieted_columns(scale)} below 1, smallest {min(scale):.3f}"
        )
    return shown


def _add_data_command(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """``qc data``; returns its subcommands, where the packages add theirs."""
    p = sub.add_parser("data", help="inspect, convert and tile datasets")
    data = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    d = data.add_parser("info", help="counts, sizes, mask coverage and problems of a dataset")
    d.add_argument("root", type=Path, help="dataset folder (MVTec, AITEX, plain) or manifest CSV")
    d.add_argument("--layout", choices=["mvtec", "aitex", "manifest", "folder"], default=None)
    d.add_argument("--json", action="store_true", help="print JSON")
    d = data.add_parser("convert", help="AITEX -> MVTec layout with the protocol's split")
    d.add_argument("--from", dest="source_layout", choices=["aitex"], required=True)
    d.add_argument("--fabric", required=True, help="fabric code, e.g. 00")
    d.add_argument("--train-good", type=int, default=12, help="good strips for training")
    d.add_argument("--skip-bad", action="store_true", help="leave bad files out and report them")
    d.add_argument("src", type=Path)
    d.add_argument("out", type=Path)
    d = data.add_parser("merge", help="the training images (train/good and labelled train/<type>) of several datasets as one (never test/)")
    d.add_argument("sources", type=Path, nargs="+", help="MVTec-layout datasets")
    d.add_argument("--out", type=Path, required=True, help="new dataset folder")
    d.add_argument("--copy", action="store_true", help="copy the files instead of linking them")
    d = data.add_parser("tile", help="cut large images into tiles, skipping blank padding")
    d.add_argument("root", type=Path)
    d.add_argument("out", type=Path)
    d.add_argument("--tile", type=int, default=256)
    d.add_argument("--overlap", type=int, default=32)
    d.add_argument("--skip-bad", action="store_true", help="leave bad files out and report them")
    p.set_defaults(handler=cmd_data)
    return data


def _add_synth_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic fabric dataset (MVTec AD layout)")
    p.add_argument("--out", type=Path, default=None, help="dataset folder to write")
    p.add_argument("--gallery", type=Path, default=None, help="write a contact sheet PNG of every fabric and defect")
    p.add_argument("--count", type=int, default=200, help="good training images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="image side in px")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.add_argument("--panels", type=int, default=0, help="also whole garment frames of the simulated line")
    p.add_argument(
        "--train-defects", type=int, default=0,
        help="labelled defect images (with masks) in train/<type>/, for supervised training; half are panels with --panels",
    )
    p.add_argument(
        "--fabrics", default=None,
        help="comma-separated fabric names the tiles show (default: all ten in turn), e.g. twill for one fabric's dataset",
    )
    p.add_argument(
        "--one-style", action="store_true",
        help="each fabric's tiles cut from one roll of it, its seams in one stitch and thread (default: every tile its own colourway and seam look)",
    )
    p.add_argument(
        "--web-edges", type=float, default=0.0,
        help="share (0-1) of the good tiles drawn at a web's edge: bed, selvage band and cloth (default 0)",
    )
    p.set_defaults(handler=cmd_synth)


def _add_predict_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="inspect image files with an exported model")
    p.add_argument("model_dir", type=Path, help="models/<name>/<version> (or models/<name>)")
    p.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--out", type=Path, required=True, help="folder for results.jsonl and overlays")
    p.add_argument("--save-heatmaps", action="store_true", help="also write heatmaps/<stem>.npy")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    p.add_argument("--px-per-mm", type=float, default=None, help="image scale, for sizes in mm")
    p.set_defaults(handler=cmd_predict)


def _add_eval_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure an exported model on a dataset's test/ split")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--data", type=Path, required=True, help="dataset root with test/")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    p.add_argument("--record", action="store_true", help="write the figures into the model card")
    p.add_argument(
        "--record-as", default=None, metavar="NAME",
        help="with --record: keep them as NAME.<metric> beside the card's main figures",
    )
    p.add_argument(
        "--report", type=Path, default=None, help="write ROC/PR curves and a gallery of the worst misses to DIR"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-bad", action="store_true")
    p.set_defaults(handler=cmd_eval)


def _add_models_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, show, verify and promote exported models")
    models = p.add_subparsers(dest="models_command", metavar="MODELS_COMMAND", required=True)
    m = models.add_parser("list", help="models/<name>/<version>, * marks the promoted version")
    m.add_argument("--root", type=Path, default=Path("models"))
    m = models.add_parser("show", help="print a model card")
    m.add_argument("path", type=Path)
    m = models.add_parser("verify", help="check sha256, card and graph contract")
    m.add_argument("path", type=Path)
    m = models.add_parser("promote", help="make a version the one stations load by default")
    m.add_argument("name")
    m.add_argument("version")
    m.add_argument("--root", type=Path, default=Path("models"))
    p.set_defaults(handler=cmd_models)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qc", description="Garment and fabric quality-control inspector."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data = _add_data_command(sub)
    _add_synth_command(sub)
    _add_predict_command(sub)
    _add_eval_command(sub)
    _add_models_command(sub)

    groups = CommandGroups(top=sub, data=data)
    for module in PACKAGE_COMMANDS:
        importlib.import_module(module).add_commands(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, argv)
    except UserError as exc:
        print(f"qc {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
