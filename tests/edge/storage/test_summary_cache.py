"""The summary's day cache: same figures as a full count, and still right after reviews and late units."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from edge.reports.config import ReportsConfig
from edge.reports.summary import summary
from edge.storage.query import UnitFilter
from edge.storage.summary_cache import day_cache
from edge.units import Review
from tests.edge.conftest import T0, _new_unit  # T0: 2024-05-06 07:08:09 UTC
from tests.edge.postgres_server import pg_url, postgres  # noqa: F401  (fixtures)

CONFIG = ReportsConfig(timezone="Asia/Kolkata")  # half-hour zone: shifts cut through UTC quarters
HOLE = {"type": "hole", "box": [1, 2, 3, 4], "area_px": 12, "peak_score": 0.9, "mean_score": 0.7}


@pytest.fixture
def week(add_unit):
    """60 units over six days, two stations, a third failed; every 2h23m, so days cut buckets."""
    units = []
    for i in range(60):
        failed = i % 3 == 0
        units.append(add_unit(
            T0 + timedelta(minutes=143 * i), seed=i % 4, station=f"s{i % 2 + 1}",
            verdict="fail" if failed else "pass", score=0.9 if failed else 0.1,
            defects=[HOLE] if failed else [],
        ))
    return units


def both(store, **query):
    unit_filter = UnitFilter.model_validate(query)
    return summary(store, unit_filter, CONFIG), summary(store, unit_filter, CONFIG, use_cache=False)


def test_cached_summary_equals_a_full_count(store, week):
    rng = random.Random(0)
    cases = [{}, {"station": "s1"}, {"station": "s9"}]
    for _ in range(25):
        a, b = sorted(rng.sample(range(-600, 9500), 2))
        query = {"from": (T0 + timedelta(minutes=a)).isoformat(), "to": (T0 + timedelta(minutes=b)).isoformat()}
        cases.append(query)
        cases.append({**query, "station": rng.choice(["s1", "s2"])})
        cases.append({"from": query["from"]})
        cases.append({"to": query["to"]})
    for query in cases:
        cached, full = both(store, **query)
        assert cached == full, query
    assert day_cache(store.engine).days_built >= 6  # the cache was used, not bypassed


def test_a_second_summary_counts_no_closed_day_again(store, week):
    summary(store, UnitFilter(), CONFIG)
    built = day_cache(store.engine).days_built
    summary(store, UnitFilter(), CONFIG)
    summary(store, UnitFilter(station="s2"), CONFIG)
    assert day_cache(store.engine).days_built == built


def test_a_review_of_a_cached_day_changes_the_summary(store, week):
    before = summary(store, UnitFilter(), CONFIG)
    built = day_cache(store.engine).days_built
    failed = week[30]  # a failed unit on the fourth day
    store.review(failed.id, Review(by="op", verdict="pass", note="a shadow"))
    after, full = both(store)
    assert after == full
    assert after["passed"] == before["passed"] + 1
    assert after["first_pass_yield"] == before["first_pass_yield"]  # the model still failed it
    assert day_cache(store.engine).days_built == built + 1  # only that day was counted again
    # And back to fail with another type: the Pareto and the yield follow.
    store.review(failed.id, Review(by="op", verdict="fail", defect_type="stain"))
    again, full = both(store)
    assert again == full and again["passed"] == before["passed"]
    assert {p["type"] for p in again["pareto"]} == {"hole", "stain"}


def test_late_and_removed_units_are_noticed(store, week, add_unit):
    before = summary(store, UnitFilter(), CONFIG)
    late = add_unit(T0 + timedelta(days=1, hours=3), seed=1, station="s1")  # a spool replay, say
    after, full = both(store)
    assert after == full and after["units"] == before["units"] + 1
    from edge.storage.tables import units_table

    with store.engine.begin() as conn:  # retention removing it again
        conn.execute(units_table.delete().where(units_table.c.id == late.id))
    again, full = both(store)
    assert again == full and again["units"] == before["units"]


def test_only_from_to_and_station_use_the_cache(store, week):
    summary(store, UnitFilter(), CONFIG)
    built = day_cache(store.engine).days_built
    for query in ({"verdict": "fail"}, {"min_score": 0.5}, {"line": "line-1"}, {"defect_type": "hole"}):
        cached, full = both(store, **query)
        assert cached == full, query
    assert day_cache(store.engine).days_built == built


def test_forget_counts_every_day_again(store, week):
    summary(store, UnitFilter(), CONFIG)
    cache = day_cache(store.engine)
    built = cache.days_built
    cache.forget()
    cached, full = both(store)
    assert cached == full and cache.days_built == 2 * built


def test_on_postgresql_too(pg_url, tmp_path):  # noqa: F811
    import numpy as np

    from edge.storage.store import UnitStore

    store = UnitStore(pg_url, tmp_path / "data")
    try:
        image = np.zeros((24, 32, 3), np.uint8)
        units = [
            store.add(_new_unit(T0 + timedelta(minutes=143 * i), station=f"s{i % 2 + 1}",
                                verdict="fail" if i % 3 == 0 else "pass", defects=[HOLE] if i % 3 == 0 else []),
                      original_rgb=image, heatmap_rgb=image, overlay_rgb=image)
            for i in range(30)
        ]
        queries = [{}, {"station": "s2"}, {"from": (T0 + timedelta(hours=20)).isoformat(),
                                          "to": (T0 + timedelta(hours=50)).isoformat()}]
        for query in queries:
            cached, full = both(store, **query)
            assert cached == full and cached["units"] > 0, query
        assert day_cache(store.engine).days_built > 0
        store.review(units[9].id, Review(by="op", verdict="pass"))
        for query in queries:
            cached, full = both(store, **query)
            assert cached == full, query
    finally:
        store.close()
