"""Edge fixtures: a real SQLite store in tmp_path and a helper that files units into it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event

from edge.storage.store import UnitStore
from edge.units import NewUnit, UnitRecord

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path):
    s = UnitStore(f"sqlite:///{tmp_path / 'data' / 'qc.db'}", tmp_path / "data")
    yield s
    s.close()


def _new_unit(captured_at: datetime, *, verdict: str = "pass", score: float = 0.1, **kw) -> NewUnit:
    values = dict(
        station="station-1",
        line="line-1",
        captured_at=captured_at,
        decided_at=captured_at + timedelta(milliseconds=40),
        verdict=verdict,
        score=score,
        defects=[],
        model_name="dark_spot",
        model_version="1.0.0",
        thresholds={"image": 0.5, "pixel": 0.5},
        timings={"infer_ms": 12.5},
    )
    values.update(kw)
    return NewUnit(**values)


class DriverSurprise(Exception):
    """An exception class the store names nowhere: what an unfamiliar driver error looks like."""


def refuse_rows_with(store: UnitStore, unit_ref: str) -> None:
    """From now on the database connection refuses any units row carrying ``unit_ref``, with a
    DriverSurprise (not a SQLAlchemy error)."""

    def before_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO units") and unit_ref in str(parameters):
            raise DriverSurprise(f"cannot store {unit_ref!r}")

    event.listen(store.engine, "before_cursor_execute", before_execute)


@pytest.fixture
def new_unit():
    """A NewUnit with plausible values; keyword arguments replace any field."""
    return _new_unit


@pytest.fixture
def add_unit(store):
    """File a unit with small random images into ``store``; returns its UnitRecord."""

    def add(captured_at: datetime = T0, seed: int = 0, **kw) -> UnitRecord:
        rng = np.random.default_rng(seed)
        image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        return store.add(
            _new_unit(captured_at, **kw),
            original_rgb=image,
            heatmap_rgb=image[:, :, ::-1].copy(),
            overlay_rgb=255 - image,
        )

    return add


@pytest.fixture
def make_client(store):
    """``make_client(config=None, **services)`` -> a TestClient on ``store`` (closed at teardown)."""
    from fastapi.testclient import TestClient

    from edge.api.app import Services, create_app
    from edge.config import EdgeConfig

    clients = []

    def make(config=None, **kw):
        services = Services(config=config or EdgeConfig(), store=store, **kw)
        client = TestClient(create_app(services))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def api(make_client):
    return make_client()


@pytest.fixture
def auth(store):
    """Headers carrying a fresh key of each role: ``auth["operator"]``."""
    return {
        role: {"Authorization": f"Bearer {store.keys.create(f'{role}-key', role)}"}
        for role in ("viewer", "operator", "admin")
    }
