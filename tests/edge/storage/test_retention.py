"""Retention by age and by size: real unit files and SQLite rows; images go, rows stay."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from edge.config import EdgeConfig, load_config
from edge.storage.config import RetentionConfig
from edge.storage.files import unit_folder
from edge.storage.retention import Retention, removed_by_retention, removed_through, start_retention

NOW = datetime.now(timezone.utc)
SIZE = (48, 64)


def _add(store, new_unit, at: datetime, seed: int = 0, verdict: str = "pass"):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    heat = rng.random(SIZE).astype(np.float32)
    return store.add(new_unit(at, verdict=verdict), original_rgb=image, heatmap=heat)


def _unit_dir(store, unit) -> Path:
    return store.data_dir / unit.original_path.rsplit("/", 1)[0]


def _units_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in (data_dir / "units").glob("*/*/*") if p.is_file())


def _retention(store, **limits) -> Retention:
    return Retention(store.data_dir, store.known_ids, **limits)


def test_by_age_removes_whole_old_days_and_keeps_every_row(store, new_unit, api):
    old = [_add(store, new_unit, NOW - timedelta(days=d), seed=d, verdict=v)
           for d, v in ((10, "fail"), (10, "pass"), (5, "fail"))]
    recent = [_add(store, new_unit, NOW - timedelta(days=1), seed=1),
              _add(store, new_unit, NOW, seed=2)]
    # The old units were looked at: their renders exist and must go with them.
    assert api.get(f"/api/v1/units/{old[0].id}/overlay.png").status_code == 200
    assert (_unit_dir(store, old[0]) / "overlay.png").is_file()

    report = _retention(store, max_age_days=3).apply(NOW)

    assert (report.units_removed, report.days_removed) == (3, 2) and report.bytes_freed > 0
    for unit in old:
        assert not _unit_dir(store, unit).exists()
        assert not _unit_dir(store, unit).parent.exists()  # the whole day folder
    for unit in recent:
        for kind, name in (("image", "image.jpg"), ("heatmap", "heatmap.png"), ("overlay", "overlay.png")):
            res = api.get(f"/api/v1/units/{unit.id}/{name}")
            assert res.status_code == 200, (kind, res.text)
    # Rows stay: the unit, its list entry and the reports over the whole range.
    assert store.count() == 5
    res = api.get(f"/api/v1/units/{old[0].id}")
    assert res.status_code == 200 and res.json()["verdict"] == "fail"
    since = (NOW - timedelta(days=30)).isoformat()
    summary = api.get("/api/v1/summary", params={"since": since}).json()
    assert (summary["units"], summary["failed"]) == (5, 2)
    for name in ("image.jpg", "heatmap.png", "overlay.png"):
        res = api.get(f"/api/v1/units/{old[2].id}/{name}")
        assert res.status_code == 404 and "image removed by retention" in res.json()["detail"]
    assert removed_through(store.data_dir) == f"{(NOW - timedelta(days=5)):%Y-%m-%d}/~"


def test_by_age_never_touches_the_current_day(store, new_unit):
    midday = NOW.replace(hour=12, minute=0)  # an hour later is still the same day, at any clock time
    unit = _add(store, new_unit, midday)
    report = _retention(store, max_age_days=0.001).apply(midday + timedelta(hours=1))
    assert report.units_removed == 0 and (_unit_dir(store, unit) / "image.jpg").is_file()


def test_by_size_removes_the_oldest_units_first_and_keeps_rows(store, new_unit, api):
    units = [_add(store, new_unit, NOW - timedelta(days=4, minutes=-i), seed=i) for i in range(6)]
    units += [_add(store, new_unit, NOW - timedelta(minutes=10 - i), seed=10 + i) for i in range(4)]
    total = _units_bytes(store.data_dir)
    per_unit = total / len(units)
    limit = int(total - 3.5 * per_unit)  # room for all but the oldest four (sizes vary a little)

    report = _retention(store, max_bytes=limit).apply(NOW)

    assert _units_bytes(store.data_dir) <= limit
    assert report.bytes_kept == _units_bytes(store.data_dir)
    gone = [u for u in units if not _unit_dir(store, u).exists()]
    assert gone == units[: len(gone)] and 3 <= len(gone) <= 5  # the oldest, in order
    assert store.count() == 10
    assert removed_by_retention(store.data_dir, gone[-1].original_path)
    assert not removed_by_retention(store.data_dir, units[len(gone)].original_path)
    res = api.get(f"/api/v1/units/{gone[0].id}/image.jpg")
    assert res.status_code == 404 and "image removed by retention" in res.json()["detail"]
    assert api.get(f"/api/v1/units/{units[-1].id}/overlay.png").status_code == 200


def test_by_size_spares_a_unit_being_written_today(store, new_unit):
    kept = _add(store, new_unit, NOW)
    # Files written, row not yet committed: what the writer leaves between the two steps.
    in_flight = store.data_dir / unit_folder(NOW, "f" * 32)
    in_flight.mkdir(parents=True)
    (in_flight / "image.jpg").write_bytes(b"\xff\xd8" + b"\0" * 4096)

    report = _retention(store, max_bytes=1).apply(NOW)

    assert (in_flight / "image.jpg").is_file()  # no row yet: never deleted
    assert not _unit_dir(store, kept).exists()  # a stored unit of today may go when size demands
    assert report.units_removed == 1 and store.count() == 1


def test_without_limits_nothing_is_removed_and_no_thread_runs(store, new_unit):
    unit = _add(store, new_unit, NOW - timedelta(days=400))
    assert start_retention(RetentionConfig(), store) is None
    assert _retention(store).apply(NOW).units_removed == 0
    assert (_unit_dir(store, unit) / "image.jpg").is_file()
    assert removed_through(store.data_dir) is None


def test_the_service_thread_applies_the_limits(store, new_unit):
    old = _add(store, new_unit, NOW - timedelta(days=40))
    new = _add(store, new_unit, NOW)
    thread = start_retention(RetentionConfig(max_age_days=30, check_every_s=0.05), store)
    try:
        deadline = time.monotonic() + 10
        while _unit_dir(store, old).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        thread.stop()
    assert not _unit_dir(store, old).exists() and _unit_dir(store, new).exists()
    assert thread.last_error is None and store.count() == 2


def test_config_takes_limits_and_refuses_nonsense(tmp_path):
    config = load_config(None, ["storage.retention.max_age_days=30",
                                "storage.retention.max_bytes=50000000000"])
    assert config.storage.retention.max_age_days == 30
    assert config.storage.retention.max_bytes == 50_000_000_000
    assert EdgeConfig().storage.retention.max_age_days is None
    from qc.overrides import ConfigError

    with pytest.raises(ConfigError, match="max_age_days"):
        load_config(None, ["storage.retention.max_age_days=-1"])
    with pytest.raises(ConfigError, match="max_gigabytes"):
        load_config(None, ["storage.retention.max_gigabytes=5"])
