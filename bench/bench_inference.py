"""Inference latency and throughput of an exported model with onnxruntime (no torch).

    .venv/bin/python bench/bench_inference.py [MODEL_DIR] [--threads 2] [--seconds 3]
        [--torch-run RUN_DIR] [--int8 INT8_MODEL_DIR]

Prints p50/p99 latency per call and tiles per second for 256x256 tiles at batch 1, 8 and 32 for
onnxruntime fp32, and for torch eager (the run's checkpoint, needs the train extra) and an int8
export when given; then whole images end to end through the Inferencer: a 4096x256 AITEX-sized
strip and a 2048x2048 garment photo. Run it on an otherwise idle machine; the figures are for the
machine it ran on.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qc.inference import Inferencer, to_input_tensor  # noqa: E402
from qc.machine import machine  # noqa: E402


def timed_calls(fn, seconds: float, min_calls: int = 10) -> np.ndarray:
    fn()  # warm-up: first call allocates
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < min_calls:
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", default="models/default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--torch-run", default=None, help="run folder: also time torch eager")
    parser.add_argument("--int8", default=None, help="int8 model folder: also time it")
    args = parser.parse_args()

    inferencer = Inferencer(args.model_dir, threads=args.threads, batch_size=8)
    tile = inferencer.card.input.tile_px
    rng = np.random.default_rng(0)
    print(f"model {inferencer.name} {inferencer.version} ({inferencer.model_dir}), tile {tile} px")
    print(f"machine: {machine()}; onnxruntime threads: {args.threads}")
    engines = {"onnxruntime fp32": inferencer._run}
    if args.int8:
        engines["onnxruntime int8"] = Inferencer(args.int8, threads=args.threads)._run
    if args.torch_run:
        import torch

        from training.export import load_run

        torch.set_num_threads(args.threads)
        net = load_run(Path(args.torch_run)).net

        def torch_eager(tensor):
            with torch.inference_mode():
                return net(torch.from_numpy(tensor))

        engines["torch eager"] = torch_eager
    print(f"{'engine':<18} {'batch':>5} {'p50 ms':>8} {'p99 ms':>8} {'ms/tile':>8} {'tiles/s':>8}")
    for engine, run in engines.items():
        for batch in (1, 8, 32):
            tensor = to_input_tensor(rng.integers(0, 256, (batch, tile, tile, 3), dtype=np.uint8))
            times = timed_calls(lambda: run(tensor), args.seconds)
            p50, p99 = np.percentile(times, [50, 99])
            print(
                f"{engine:<18} {batch:>5} {p50:>8.2f} {p99:>8.2f} {p50 / batch:>8.2f} "
                f"{1000 * batch / p50:>8.1f}"
            )
    print(f"{'image':>12} {'tiles':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for name, shape in (("4096x256", (256, 4096)), ("2048x2048", (2048, 2048))):
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        from qc.tiling import TileGrid

        n_tiles = len(TileGrid.for_image(*shape, tile, inferencer.card.tiling.overlap_px).boxes)
        times = timed_calls(lambda: inferencer.infer(image), args.seconds, min_calls=3)
        p50, p99 = np.percentile(times, [50, 99])
        print(f"{name:>12} {n_tiles:>6} {p50:>8.1f} {p99:>8.1f}")


if __name__ == "__main__":
    main()
