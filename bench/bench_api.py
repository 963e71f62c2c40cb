"""REST API latency with a large history: the unit list and the summary, while units arrive.

    .venv/bin/python bench/bench_api.py [--units 100000] [--requests 200]

Fills a temporary SQLite station database with ``--units`` rows in bulk (rows only: the queries
never open image files), starts the app in-process, keeps a writer adding units through the store
(files and row, as the pipeline does) at 5 per second, and times requests: the first page of
``/api/v1/units``, a filtered page, a deep cursor page, and ``/api/v1/summary`` for the last day
and for all 30 days (after one untimed-in-percentiles first call that fills the day cache).
Targets (issue 7): list p99 <= 100 ms, summary p99 <= 300 ms.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.api.app import Services, create_app  # noqa: E402
from edge.config import EdgeConfig  # noqa: E402
from edge.storage.store import UnitStore, new_unit_id  # noqa: E402
from edge.storage.tables import derived_columns, units_table  # noqa: E402
from edge.units import NewUnit  # noqa: E402
from qc.machine import machine  # noqa: E402

DEFECT_TYPES = ["defect", "hole", "stain", "broken_end", "knot"]


def bulk_rows(n: int, end: datetime, rng: np.random.Generator):
    """Rows spread over 30 days, 15 % failed, in batches for executemany."""
    span_s = 30 * 24 * 3600
    offsets = np.sort(rng.uniform(0, span_s, n))[::-1]
    batch = []
    for i, off in enumerate(offsets):
        at = end - timedelta(seconds=float(off))
        failed = rng.random() < 0.15
        kind = DEFECT_TYPES[int(rng.integers(len(DEFECT_TYPES)))] if failed else None
        defects = [{"type": kind, "box": [1, 2, 3, 4], "area_px": 12, "peak_score": 0.9, "mean_score": 0.8,
                    "severity": "major"}] if failed else []
        naive = at.replace(tzinfo=None)
        batch.append({
            "id": new_unit_id(at), "station": f"station-{i % 3 + 1}", "line": "line-1", "lot": None,
            "style": None, "captured_at": naive, "decided_at": naive, "verdict": "fail" if failed else "pass",
            "score": float(rng.random()), "defects": defects, "model_name": "bench", "model_version": "1",
            "thresholds": {"image": 0.5, "pixel": 0.5}, "timings": {"infer_ms": 100.0},
            "original_path": "x.jpg", "heatmap_path": "x.png", "overlay_path": "x.png",
            # final verdict, defect_types and severity as the store derives them (one rule)
            **derived_columns("fail" if failed else "pass", defects),
            "height_px": 480, "width_px": 640,
        })
        if len(batch) == 5000:
            yield batch
            batch = []
    if batch:
        yield batch


def percentiles(times: list[float]) -> str:
    p50, p99 = np.percentile(times, [50, 99])
    return f"p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   ({len(times)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    from fastapi.testclient import TestClient

    rng = np.random.default_rng(0)
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="qc-bench-api-") as tmp:
        store = UnitStore(f"sqlite:///{tmp}/qc.db", Path(tmp))
        started = time.perf_counter()
        with store.engine.begin() as conn:
            for batch in bulk_rows(args.units, now - timedelta(minutes=1), rng):
                conn.execute(units_table.insert(), batch)
        print(f"filled {args.units} units in {time.perf_counter() - started:.1f} s; "
              f"{machine()}")

        stop = threading.Event()

        def ingest():  # the line keeps inspecting while the manager reads reports
            image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
            while not stop.wait(0.2):
                at = datetime.now(timezone.utc)
                store.add(
                    NewUnit(station="station-1", line="line-1", captured_at=at, decided_at=at,
                            verdict="pass", score=0.1, defects=[], model_name="bench", model_version="1",
                            thresholds={"image": 0.5, "pixel": 0.5}, timings={}),
                    original_rgb=image, heatmap_rgb=image, overlay_rgb=image,
                )

        writer = threading.Thread(target=ingest, daemon=True)
        writer.start()
        client = TestClient(create_app(Services(config=EdgeConfig(), store=store)))
        deep = client.get("/api/v1/units", params={"limit": 50}).json()["next"]
        for _ in range(20):  # walk 1,000 units down for the deep-page case
            deep = client.get("/api/v1/units", params={"limit": 50, "cursor": deep}).json()["next"]
        # A station keeps its summary day cache warm as days close; a bulk fill does not, so the
        # first summary counts all 30 days once. Shown apart, not hidden in the percentiles.
        t = time.perf_counter()
        assert client.get("/api/v1/summary").status_code == 200
        print(f"{'summary, first call':<20} {(time.perf_counter() - t) * 1000:7.1f} ms (fills the day cache)")
        day_ago = (now - timedelta(days=1)).isoformat()
        cases = {
            "list, first page": ("/api/v1/units", {"limit": 50}),
            "list, filtered": ("/api/v1/units", {"limit": 50, "verdict": "fail", "defect_type": "hole"}),
            "list, deep cursor": ("/api/v1/units", {"limit": 50, "cursor": deep}),
            "summary, last day": ("/api/v1/summary", {"from": day_ago}),
            "summary, 30 days": ("/api/v1/summary", {}),
        }
        for name, (url, params) in cases.items():
            times = []
            for _ in range(args.requests if "summary" not in name else max(20, args.requests // 10)):
                t = time.perf_counter()
                response = client.get(url, params=params)
                times.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, response.text
            print(f"{name:<20} {percentiles(times)}")
        stop.set()
        writer.join()
        print(f"units added while measuring: {store.count() - args.units}")
        store.close()
    print("targets: list p99 <= 100 ms, summary p99 <= 300 ms")


if __name__ == "__main__":
    main()
