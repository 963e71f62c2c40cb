"""What a 256x256 tile costs in onnxruntime with each norm and each test-time flip setting.

    .venv/bin/qc bench norms -- [--config configs/train/default.yaml] [--norms instance,local_instance]
        [--flips none,vertical] [--exporters torchscript] [--output-strides 2] [--local-from-strides 2]
        [--base-channels 12] [--decoder-fuse conv3x3,pointwise] [--recurrence-dims 0,16] [--whole-cells true,false] [--threads 2] [--seconds 3] [--rounds 5] [--profile CALLS] [--json OUT]

Builds the configuration's network once per (norm, flips, exporter, output stride, width, decoder join, and for
local norms net.local_norm_from_stride and export.whole_cells, and net.recurrence_dims), exports it as training does
(training/export.py: the export, then onnxslim's folding, so the graph timed is the graph that
ships; --exporters torchscript,dynamo compares the two exporters' graphs) and times the graphs on
one tile at batch 1, each in a process of its own as a station runs it, in turns (--rounds), so a
slow minute of a shared host is spread over all of them: p50 and p99 ms per call. --profile adds
onnxruntime's kernel time per call by operator type, to show where a graph's time goes. The weights
are freshly initialised: a graph's time does not depend on its weights, so no training run is
needed to compare the variants (needs the train extra, for torch). Run it on an otherwise idle
machine; the figures are for the machine it ran on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))  # its sibling bench_inference.py times the calls

from bench_inference import timed_calls  # noqa: E402
from qc.contract import INPUT_NAME  # noqa: E402
from qc.machine import machine  # noqa: E402


# Each variant's settings, by the name its row carries, and the configuration key each one sets.
SETTINGS = {"norm": "net.norm", "flips": "net.test_time_flips", "exporter": "export.exporter",
            "output_stride": "net.output_stride", "local_norm_from_stride": "net.local_norm_from_stride",
            "base_channels": "net.base_channels", "decoder_fuse": "net.decoder_fuse",
            "recurrence_dims": "net.recurrence_dims",
            "whole_cells": "export.whole_cells"}


def export_variant(config_path: Path, variant: dict[str, str], folder: Path) -> tuple[Path, int, int]:
    """The configuration's network with fresh weights, exported as training does; its path, tile
    side and number of weights."""
    import torch

    from training.config import load_config
    from training.export import export_onnx, simplify_onnx
    from training.networks import build_network

    config = load_config(config_path, [f"{SETTINGS[name]}={value}" for name, value in variant.items()])
    torch.manual_seed(0)
    net = build_network(config.net).eval()
    path = folder / ("_".join(f"{name}{value}" for name, value in variant.items()) + ".onnx")
    export_onnx(net, path, tile_px=config.export.tile_px, opset=config.export.opset, exporter=config.export.exporter,
                whole_cells=config.export.whole_cells)
    simplify_onnx(path)  # the graph a station runs is the simplified one
    return path, config.export.tile_px, sum(parameter.numel() for parameter in net.parameters())


def variants_of(args: argparse.Namespace) -> list[dict[str, str]]:
    """Every combination of the asked-for settings; only local norms have a finest local level, so
    the other norms get one row per combination of the rest."""
    from training.config import load_config

    config = load_config(args.config, [])
    net = config.net
    widths = args.base_channels.split(",") if args.base_channels else [str(net.base_channels)]
    recurrences = args.recurrence_dims.split(",") if args.recurrence_dims else [str(net.recurrence_dims)]
    fuses = args.decoder_fuse.split(",") if args.decoder_fuse else [net.decoder_fuse]
    # Only local norms have cells; other norms get the configuration's setting, which changes nothing.
    whole = args.whole_cells.split(",") if args.whole_cells else [str(config.export.whole_cells).lower()]
    variants = []
    for norm in args.norms.split(","):
        local_froms = args.local_from_strides.split(",") if norm == "local_instance" else ["2"]
        cells = whole if norm == "local_instance" else [str(config.export.whole_cells).lower()]
        for flips, exporter, stride, local_from, width, fuse, recurrence, whole_cells in itertools.product(
            args.flips.split(","), args.exporters.split(","), args.output_strides.split(","), local_froms,
            widths, fuses, recurrences, cells,
        ):
            variants.append({"norm": norm, "flips": flips, "exporter": exporter, "output_stride": stride,
                             "local_norm_from_stride": local_from, "base_channels": width, "decoder_fuse": fuse,
                             "recurrence_dims": recurrence, "whole_cells": whole_cells})
    return variants


def in_own_process(job: str, path: Path, tile: int, threads: int, *extra: str):
    """What this script's ``job`` (--time-onnx, --profile-onnx) prints for one graph, run in a fresh
    process that holds nothing but that graph's session.

    Timed inside this process, after torch has exported the variants and beside their other sessions,
    a graph ran up to 1.7 times slower than alone (48 against 28 ms), as a station never runs it.
    """
    out = subprocess.run(
        [sys.executable, __file__, job, str(path), "--tile", str(tile), "--threads", str(threads), *extra],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def onnx_session(path: Path, threads: int, profile_dir: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_dir / "profile")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_onnx(path: Path, tile: int, threads: int, seconds: float) -> list[float]:
    session = onnx_session(path, threads)
    x = np.random.default_rng(0).random((1, 3, tile, tile), dtype=np.float32)
    return timed_calls(lambda: session.run(None, {INPUT_NAME: x}), seconds).tolist()


def profile_onnx(path: Path, tile: int, threads: int, calls: int) -> dict[str, float]:
    """Kernel ms per call by operator type, from onnxruntime's profile of ``calls`` calls."""
    with tempfile.TemporaryDirectory() as tmp:
        session = onnx_session(path, threads, Path(tmp))
        x = np.random.default_rng(0).random((1, 3, tile, tile), dtype=np.float32)
        for _ in range(calls):
            session.run(None, {INPUT_NAME: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            per_op[op] = per_op.get(op, 0.0) + event["dur"] / 1000.0 / calls
    return dict(sorted(per_op.items(), key=lambda item: -item[1]))


def interleaved_times(paths: list[Path], tile: int, threads: int, seconds: float, rounds: int) -> list[np.ndarray]:
    """Each graph's call times (ms), timed in turns: ``rounds`` slices of ``seconds / rounds`` each.

    A shared 2-core host slows down for minutes at a time; timing the variants one after the other
    would charge that to whichever ran then, while turns spread it over all of them.
    """
    times: list[list[np.ndarray]] = [[] for _ in paths]
    for _ in range(rounds):
        for i, path in enumerate(paths):
            timed = in_own_process("--time-onnx", path, tile, threads, "--seconds", str(seconds / rounds))
            times[i].append(np.array(timed))
    return [np.concatenate(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/train/default.yaml"))
    parser.add_argument("--norms", default="instance,local_instance")
    parser.add_argument("--flips", default="none,vertical")
    parser.add_argument("--exporters", default="torchscript")
    parser.add_argument("--output-strides", default="2", help="net.output_stride values, comma-separated (2,4)")
    parser.add_argument("--local-from-strides", default="2",
                        help="net.local_norm_from_stride values for the local_instance rows, comma-separated (2,4,8)")
    parser.add_argument("--base-channels", default=None,
                        help="net.base_channels values, comma-separated (12,8); default: the configuration's")
    parser.add_argument("--decoder-fuse", default=None,
                        help="net.decoder_fuse values, comma-separated (conv3x3,pointwise); default: the configuration's")
    parser.add_argument("--recurrence-dims", default=None,
                        help="net.recurrence_dims values, comma-separated (0,16); default: the configuration's")
    parser.add_argument("--whole-cells", default=None,
                        help="export.whole_cells values for the local_instance rows (true,false); default: the configuration's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per variant, over all rounds")
    parser.add_argument("--rounds", type=int, default=5, help="turns the variants are timed in")
    parser.add_argument("--profile", type=int, default=0, metavar="CALLS",
                        help="also profile each graph over CALLS calls: kernel ms per call by operator type")
    parser.add_argument("--json", type=Path, default=None)
    # The children's jobs: time or profile one graph in a process of its own.
    parser.add_argument("--time-onnx", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--profile-onnx", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, default=256, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_onnx:
        print(json.dumps(time_onnx(args.time_onnx, args.tile, args.threads, args.seconds)))
        return
    if args.profile_onnx:
        print(json.dumps(profile_onnx(args.profile_onnx, args.tile, args.threads, args.calls)))
        return

    print(f"machine: {machine()}; onnxruntime threads: {args.threads}; config {args.config}")
    variants = variants_of(args)
    with tempfile.TemporaryDirectory() as tmp:
        built = [export_variant(args.config, variant, Path(tmp)) for variant in variants]
        tile = built[0][1]
        times = interleaved_times([path for path, _, _ in built], tile, args.threads, args.seconds, args.rounds)
        profiles = [in_own_process("--profile-onnx", path, tile, args.threads, "--calls", str(args.profile))
                    if args.profile else None for path, _, _ in built]
    rows = []
    for variant, (_, _, weights), t, ops in zip(variants, built, times, profiles):
        row = {name: value if name in ("norm", "flips", "exporter", "decoder_fuse") else int(value)
               for name, value in variant.items() if name != "whole_cells"}
        row["whole_cells"] = variant["whole_cells"] == "true"
        row.update(weights=weights, tile_px=tile, calls=len(t),
                   p50_ms=float(np.percentile(t, 50)), p99_ms=float(np.percentile(t, 99)))
        print(f"norm {variant['norm']:15s} flips {variant['flips']:9s} {variant['exporter']:11s} "
              f"stride {variant['output_stride']} local from {variant['local_norm_from_stride']:>2s} "
              f"width {variant['base_channels']:>2s} fuse {variant['decoder_fuse']:9s} recurrence {variant['recurrence_dims']:>2s} "
              f"whole cells {variant['whole_cells']:5s} tile {tile} px: "
              f"p50 {row['p50_ms']:.1f} ms  p99 {row['p99_ms']:.1f} ms  ({row['calls']} calls)")
        if ops is not None:
            row["kernel_ms_by_op"] = ops
            total = sum(ops.values())
            print(f"    kernels {total:.1f} ms a call (profiled): " + ", ".join(
                f"{op} {ms:.2f} ({100 * ms / total:.0f}%)" for op, ms in list(ops.items())[:8]))
        rows.append(row)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine(), "threads": args.threads, "config": str(args.config),
                                         "rounds": args.rounds, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
