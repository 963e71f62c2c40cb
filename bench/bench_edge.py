"""Edge pipeline throughput against bare onnxruntime on the same frames.

    .venv/bin/python bench/bench_edge.py [MODEL_DIR] [--seconds 20] [--rounds 3] [--size 480x640]

Frames of the simulated line are generated beforehand and replayed at ``--fps`` (default 60, well
above what the model keeps up with, so the source is never the bottleneck; a camera's own cost is
not the station's), through the real pipeline: bounded queue, inference
worker, writer thread, SQLite and image files in a temporary data folder. Prints units per second,
frame-to-verdict latency p50/p99, dropped frames, and the ratio of pipeline throughput to bare
``Inferencer.infer`` throughput on the same frames. Target (docs/architecture.md): ratio >= 0.9.

Bare and pipeline phases alternate (``--rounds``) so that other work on a shared machine weighs on
both; the process CPU time per unit of each is printed too, a figure other processes move less.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.config import load_config  # noqa: E402
from edge.line.pipeline import Pipeline  # noqa: E402
from edge.line.sources import Frame  # noqa: E402
from edge.storage.store import UnitStore  # noqa: E402
from qc.inspection_model import InspectionModel  # noqa: E402
from qc.machine import machine  # noqa: E402
from qc.synth import generate_panel  # noqa: E402


class ReplaySource:
    """Pre-rendered frames, replayed in a loop until ``seconds`` have passed."""

    def __init__(self, images: list[np.ndarray], seconds: float, fps: float):
        self.images, self.seconds, self.period_s = images, seconds, 1.0 / fps

    def describe(self) -> dict:
        return {"type": "replay", "frames": len(self.images)}

    def frames(self, stop: threading.Event):
        end = time.monotonic() + self.seconds
        index = 0
        while not stop.is_set() and time.monotonic() < end:
            yield Frame(index, self.images[index % len(self.images)], datetime.now(timezone.utc), time.monotonic())
            index += 1
            time.sleep(self.period_s)  # a camera delivers frames at its own rate, never in a burst


def bare_phase(inferencer: InspectionModel, images: list[np.ndarray], seconds: float) -> tuple[int, float, float]:
    """Inferencer.infer back to back: (frames, wall s, process CPU s)."""
    started, cpu_started, n = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - started < seconds:
        inferencer.infer(images[n % len(images)])
        n += 1
    return n, time.perf_counter() - started, time.process_time() - cpu_started


def pipeline_phase(inferencer, images, seconds, args, latencies) -> tuple[dict, float, float]:
    """The real pipeline on the replayed line until it drains: (snapshot, wall s, process CPU s)."""
    with tempfile.TemporaryDirectory(prefix="qc-bench-edge-") as tmp:
        store = UnitStore(f"sqlite:///{tmp}/qc.db", Path(tmp))
        config = load_config(None, ["station.id=bench", "station.line=bench", "pipeline.queue_size=8",
                                    f"pipeline.writer_threads={args.writers}"])
        pipeline = Pipeline(
            ReplaySource(images, seconds, args.fps), inferencer, store,
            station=config.station, camera=config.camera_list()[0], settings=config.pipeline,
            rules=config.rules,
            on_unit=lambda frame, unit: latencies.append(unit.timings["capture_to_verdict_ms"]),
        )
        started, cpu_started = time.perf_counter(), time.process_time()
        pipeline.start()
        pipeline.wait()
        elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        store.close()
        return pipeline.snapshot(), elapsed, cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", default="models/default")
    parser.add_argument("--seconds", type=float, default=20.0, help="pipeline seconds in all")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of bare and pipeline "
                        "phases, so a change in the machine's load weighs on both alike")
    parser.add_argument("--size", default="480x640", help="frame height x width")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--writers", type=int, default=1, help="writer threads (pipeline.writer_threads)")
    parser.add_argument("--fps", type=float, default=60.0, help="camera rate (a fast line camera)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    images = [generate_panel(rng, size_px=(height, width)).image for _ in range(16)]
    inferencer = InspectionModel(args.model_dir, threads=args.threads)
    inferencer.infer(images[0])

    latencies: list[float] = []
    bare = [0, 0.0, 0.0]  # frames, wall s, CPU s
    pipe = [0, 0.0, 0.0]  # units, wall s, CPU s
    dropped = read = errors = 0
    for _ in range(max(1, args.rounds)):
        got = bare_phase(inferencer, images, args.seconds / 2 / args.rounds)
        bare = [a + b for a, b in zip(bare, got)]
        snap, elapsed, cpu_s = pipeline_phase(inferencer, images, args.seconds / args.rounds, args, latencies)
        pipe = [pipe[0] + sum(snap["units_by_verdict"].values()), pipe[1] + elapsed, pipe[2] + cpu_s]
        dropped, read, errors = dropped + snap["frames_dropped"], read + snap["frames_read"], errors + snap["errors"]

    bare_fps, pipe_fps = bare[0] / bare[1], pipe[0] / pipe[1]
    bare_cpu_ms, pipe_cpu_ms = bare[2] * 1000 / bare[0], pipe[2] * 1000 / max(pipe[0], 1)
    p50, p99 = np.percentile(latencies, [50, 99]) if latencies else (float("nan"),) * 2
    print(f"model {inferencer.name} {inferencer.version}; frames {width}x{height}; "
          f"{machine()}; onnxruntime threads {args.threads}; "
          f"{args.rounds} rounds")
    print(f"bare onnxruntime (Inferencer.infer): {bare_fps:.2f} frames/s")
    print(f"pipeline: {pipe_fps:.2f} units/s over {pipe[1]:.1f} s, {pipe[0]} units, "
          f"{dropped} of {read} frames dropped, {errors} errors")
    print(f"frame-to-verdict latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"throughput ratio pipeline / bare: {pipe_fps / bare_fps:.3f} (target >= 0.9)")
    # Other processes on a shared machine move the ratio above; CPU time per unit is what this
    # process spent, so its ratio is steadier and says what the pipeline adds to inference.
    print(f"process CPU per unit: bare {bare_cpu_ms:.1f} ms, pipeline {pipe_cpu_ms:.1f} ms "
          f"(ratio {bare_cpu_ms / pipe_cpu_ms:.3f}; load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
