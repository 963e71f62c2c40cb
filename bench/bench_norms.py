"""What a 256x256 tile costs in onnxruntime with each norm and each test-time flip setting.

    .venv/bin/qc bench norms -- [--config configs/train/default.yaml] [--norms instance,local_instance]
        [--flips none,vertical] [--exporters torchscript] [--threads 2] [--seconds 3] [--json OUT]

Builds the configuration's network once per (norm, flips, exporter), exports it as training does
(training/export.py; --exporters torchscript,dynamo compares the two exporters' graphs) and times
the graph on one tile at batch 1: p50 and p99 ms per call. The weights are freshly initialised: a
graph's time does not depend on its weights, so no training run is needed to compare the variants
(needs the train extra, for torch). Run it on an otherwise idle machine; the figures are for the
machine it ran on.
"""

from __future__ import annotations

import argparse
import json
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


def tile_time_ms(config_path: Path, norm: str, flips: str, exporter: str, threads: int, seconds: float) -> dict:
    import onnxruntime as ort
    import torch

    from training.config import load_config
    from training.export import export_onnx
    from training.networks import build_network

    overrides = [f"net.norm={norm}", f"net.test_time_flips={flips}", f"export.exporter={exporter}"]
    config = load_config(config_path, overrides)
    torch.manual_seed(0)
    net = build_network(config.net).eval()
    tile = config.export.tile_px
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(net, path, tile_px=tile, opset=config.export.opset, exporter=config.export.exporter)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, tile, tile), dtype=np.float32)
    times = timed_calls(lambda: session.run(None, {INPUT_NAME: x}), seconds)
    return {"norm": norm, "flips": flips, "exporter": exporter, "tile_px": tile, "calls": len(times),
            "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/train/default.yaml"))
    parser.add_argument("--norms", default="instance,local_instance")
    parser.add_argument("--flips", default="none,vertical")
    parser.add_argument("--exporters", default="torchscript")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    print(f"machine: {machine()}; onnxruntime threads: {args.threads}; config {args.config}")
    rows = []
    for norm in args.norms.split(","):
        for flips in args.flips.split(","):
            for exporter in args.exporters.split(","):
                row = tile_time_ms(args.config, norm, flips, exporter, args.threads, args.seconds)
                rows.append(row)
                print(f"norm {norm:15s} flips {flips:9s} {exporter:11s} tile {row['tile_px']} px: "
                      f"p50 {row['p50_ms']:.1f} ms  p99 {row['p99_ms']:.1f} ms  ({row['calls']} calls)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine(), "threads": args.threads, "config": str(args.config),
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
