"""Property-based run of every route in the OpenAPI spec (schemathesis): no input makes a 5xx.

The app runs on a real store holding units (with their image files), an open lot and a closed
one, with ``api.require_keys`` on and the tiny model loaded for POST /inspect: on SQLite, then on
PostgreSQL (skipped where its server binaries are missing), whose refusals differ (a NUL in a
string is a DataError there, stored as is by SQLite). Schemathesis
generates valid and invalid requests from the spec. An admin key reaches every route; a viewer key
must get 401/403 (never a 5xx, never a 2xx) from every mutating route; no key at all must get 401.
Real ids are mixed into the generated path parameters so the found-unit paths run too.
"""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from edge.api.app import Services, create_app
from edge.config import EdgeConfig
from edge.storage.lots import NewLot
from edge.storage.store import UnitStore
from edge.units import NewUnit, Review
from qc.inference import Inferencer
from tests.edge.postgres_server import PostgresServer, postgres  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

# Per operation and key: the whole file runs in well under a minute. QC_FUZZ_EXAMPLES=200 for a
# deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("QC_FUZZ_EXAMPLES", "15"))
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# POST /inspect changes nothing (the unit is inspected, not stored): any reader may call it.
READ_ONLY_POSTS = {"/api/v1/inspect"}
PUBLIC = {"/healthz"}  # the liveness probe answers without a key
HOLE = {"type": "hole", "box": [4, 6, 12, 8], "area_px": 96, "length_mm": 30.0, "peak_score": 0.9,
        "mean_score": 0.7}


@pytest.fixture(scope="module", autouse=True, params=["sqlite", "postgresql"])
def station(request, tmp_path_factory, tiny_model_dir):
    """A station database with 12 units over two days, a closed lot and an open one, three keys."""
    data = tmp_path_factory.mktemp("fuzz")
    postgres: PostgresServer | None = None
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres")  # skips the run without the binaries
        database = postgres.create_database()
        store = UnitStore(postgres.url(database), data)
    else:
        store = UnitStore(f"sqlite:///{data / 'qc.db'}", data)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    start = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    closed = store.lots.open(NewLot(station="station-1", po="PO-1", style="polo", lot_size=50,
                                    opened_by="setup", fabric_width_mm=1500.0))
    units = []
    for i in range(12):
        if i == 6:
            store.lots.close(closed.id, by="setup")
            store.lots.open(NewLot(station="station-1", po="PO-2", style="tee", lot_size=500, opened_by="setup"))
        at = start + timedelta(hours=3 * i)
        failed = i % 3 == 0
        units.append(store.add(
            NewUnit(station="station-1", line="line-1", captured_at=at, decided_at=at, verdict="fail" if failed else "pass",
                    score=0.9 if failed else 0.1, defects=[HOLE] if failed else [], model_name="tiny",
                    model_version="1", thresholds={"image": 0.5, "pixel": 0.5}, timings={"infer_ms": 1.0}),
            original_rgb=image, heatmap_rgb=image, overlay_rgb=image,
        ))
    store.review(units[3].id, Review(by="setup", verdict="pass", note="lint"))
    keys = {role: store.keys.create(f"{role}-key", role) for role in ("viewer", "operator", "admin")}
    config = EdgeConfig.model_validate({
        "api": {"require_keys": True, "max_upload_mb": 1, "max_upload_megapixels": 1},
        "station": {"px_per_mm": 2.0},
    })
    APP.state.services = Services(config=config, store=store, inferencer=Inferencer(tiny_model_dir, threads=1))
    KNOWN_IDS.update(unit_id=[u.id for u in units], lot_id=[closed.id, closed.id + 1])
    yield keys
    store.close()
    if postgres is not None:
        postgres.drop_database(database)


# The app is made at import, so schemathesis can read its spec while collecting (a spec needs no
# database); the module fixture gives it the real station before the first request.
APP = create_app(Services(config=EdgeConfig(), store=None))  # type: ignore[arg-type]
KNOWN_IDS: dict[str, list] = {}
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES, deterministic=True
)
_picker = random.Random(0)


@schema.hook
def map_path_parameters(ctx, path_parameters):
    # Half the time a real id, so found units and lots (and their files) are exercised too.
    for name, known in KNOWN_IDS.items():
        if path_parameters and name in path_parameters and _picker.random() < 0.5:
            path_parameters[name] = _picker.choice(known)
    return path_parameters


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=list(HealthCheck),
)


def success_matches_schema(ctx, response, case):
    """2xx bodies match the spec's response models. (Refusals carry a readable ``detail`` string
    where FastAPI's spec lists its default error objects: not checked.)"""
    if 200 <= response.status_code < 300:
        return response_schema_conformance(ctx, response, case)
    return None


def _checked(case, response) -> None:
    if response.status_code == 422:  # a refusal says what was wrong
        body = response.json()
        assert body.get("detail"), (case.method, case.path, response.text)


@schema.parametrize()
@FUZZ_SETTINGS
def test_admin_gets_no_server_error(case, station):
    keys = station
    if case.method == "DELETE" and case.path == "/api/v1/keys/{name}":
        case.path_parameters = {"name": "a-key-that-does-not-exist"}  # keep the run's own keys
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {keys['admin']}"},
        checks=[not_a_server_error, success_matches_schema],
    )
    _checked(case, response)


@schema.parametrize()
@FUZZ_SETTINGS
def test_viewer_is_refused_on_mutating_routes(case, station):
    keys = station
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {keys['viewer']}"}, checks=[not_a_server_error]
    )
    if case.method.upper() != case.operation.method.upper():
        assert response.status_code == 405  # negative mode tries methods the route lacks
    elif case.method.upper() in MUTATING and case.path not in READ_ONLY_POSTS:
        # A body that is not even JSON is refused (400) before the key is looked at; a viewer
        # never gets through.
        assert response.status_code in (400, 401, 403, 422), (case.method, case.path, response.status_code)
    _checked(case, response)


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_key_is_401(case, station):
    response = case.call_and_validate(checks=[not_a_server_error])
    expected = (405,) if case.method.upper() != case.operation.method.upper() else (400, 401, 422)
    if case.path in PUBLIC and case.method.upper() == case.operation.method.upper():
        expected = (200,)
    assert response.status_code in expected, (case.method, case.path, response.status_code, response.text)
    _checked(case, response)


# What the run found, kept as plain regressions (a shorter run may not draw these inputs again).
def test_found_a_lot_id_past_sql_integers_is_422_not_500(station):
    from fastapi.testclient import TestClient

    headers = {"Authorization": f"Bearer {station['admin']}"}
    with TestClient(APP) as client:
        # PostgreSQL's INTEGER has 32 bits (2**31 was a 500 there), SQLite's 64.
        for path in ("/api/v1/lots/{}", "/api/v1/lots/{}/report", "/api/v1/lots/{}/report.pdf"):
            for too_large in (2**31, 2**64):
                res = client.get(path.format(too_large), headers=headers)
                assert res.status_code == 422 and res.json()["detail"], (path, too_large)
        for too_large in (2**31, 2**63):
            assert client.post(f"/api/v1/lots/{too_large}/close", headers=headers).status_code == 422
        for unknown in (123456, 2**31 - 1):  # in range: no such lot
            assert client.get(f"/api/v1/lots/{unknown}", headers=headers).status_code == 404


def test_found_a_model_dir_the_os_cannot_stat_is_422_not_500(station):
    from fastapi.testclient import TestClient

    headers = {"Authorization": f"Bearer {station['admin']}"}
    with TestClient(APP) as client:
        res = client.put("/api/v1/model", json={"dir": "0" * 1000}, headers=headers)  # > 255 bytes
        assert res.status_code == 422 and "model refused" in res.json()["detail"], res.text
        # A NUL no longer reaches the OS: refused at the door like in any other string.
        res = client.put("/api/v1/model", json={"dir": "models/\x00default"}, headers=headers)
        assert res.status_code == 422 and res.json()["detail"][0]["loc"] == ["body", "dir"], res.text
