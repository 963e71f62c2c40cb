"""Images per second of the synthetic generator on one core (tiles and line-camera panels).

Run: .venv/bin/python bench/bench_synth.py   (well under 30 s)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from qc.synth import DEFECTS, FABRIC_DEFECTS, FABRICS, SEAM_DEFECTS, generate_panel, generate_sample  # noqa: E402

TILE_TARGET_PER_S = 50.0


def images_per_second(make, seconds: float) -> tuple[float, int]:
    make(np.random.default_rng(10_000))  # warm-up: first calls pay for imports and allocations
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        make(np.random.default_rng(count))
        count += 1
    return count / (time.perf_counter() - start), count


def main() -> None:
    cv2.setNumThreads(1)  # one core, as the speed target is stated
    rows = [
        ("generate_sample 256x256, good", lambda rng: generate_sample(rng, defect=None), 3.0),
        ("generate_sample 256x256, random defect", lambda rng: generate_sample(rng), 3.0),
        ("generate_panel 480x640, p(defect)=0.3", lambda rng: generate_panel(rng), 3.0),
    ]
    # Cheap breakdown (a fraction of a second each): which fabric or defect family costs most.
    rows += [(f"  fabric {name}, random defect", lambda rng, n=name: generate_sample(rng, fabric=n), 0.4)
             for name in FABRICS]
    rows += [
        ("  fabric defects, no seam", lambda rng: generate_sample(rng, seam=False), 0.8),
        ("  good with a seam", lambda rng: generate_sample(rng, defect=None, seam=True), 0.8),
        ("  seam defects", lambda rng: generate_sample(rng, defect=SEAM_DEFECTS[rng.integers(len(SEAM_DEFECTS))]), 0.8),
    ]
    print(f"{len(FABRICS)} fabrics, {len(DEFECTS)} defect types ({len(FABRIC_DEFECTS)} fabric, "
          f"{len(SEAM_DEFECTS)} seam), OpenCV threads: {cv2.getNumThreads()}")
    for label, make, seconds in rows:
        rate, count = images_per_second(make, seconds)
        print(f"{label:44s} {rate:8.1f} images/s  ({count} images)")
    tile_rate, _ = images_per_second(lambda rng: generate_sample(rng), 2.0)
    print(f"tile rate / target ({TILE_TARGET_PER_S:.0f}/s): {tile_rate / TILE_TARGET_PER_S:.2f}")


if __name__ == "__main__":
    main()
