"""Strings from clients: a control character (a NUL above all, which PostgreSQL cannot store) is
refused with a 422 naming the field, in every path, query and body string, on both databases."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from edge.api.app import Services, create_app
from edge.config import EdgeConfig
from edge.storage.lots import NewLot
from edge.storage.store import UnitStore
from edge.text_fields import Name, Note, control_character_problem
from tests.edge.conftest import T0, _new_unit
from tests.edge.postgres_server import pg_url, postgres  # noqa: F401  (fixtures)

IMAGE = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)


def test_the_check_names_the_character_and_where_it_is():
    problem = control_character_problem
    assert problem("PO-1 / navy, größe M") is None
    assert problem("BAD\x00REF") == "contains a control character (U+0000) at position 3"
    assert problem("a\x85") == "contains a control character (U+0085) at position 1"  # C1's NEL
    assert problem("x\ud800") == "contains an unpaired surrogate (U+D800) at position 1"

    class Model(BaseModel):
        name: Name
        note: Note | None = None

    assert Model(name="tee", note="thread end\n\tnot a defect\r\n").note.endswith("\r\n")
    for fields, field, words in (
        ({"name": "a\nb"}, "name", "U+000A) at position 1; only printable characters are"),
        ({"name": "ok", "note": "a\x00"}, "note", "tabs and line breaks are accepted"),
        ({"name": "x" * 129}, "name", "String should have at most 128 characters"),
        ({"name": ""}, "name", "String should have at least 1 character"),
    ):
        with pytest.raises(ValidationError) as refused:
            Model(**fields)
        (error,) = refused.value.errors()
        assert error["loc"] == (field,) and words in error["msg"], error


def string_schemas(schema: dict, components: dict):
    """Every string schema inside ``schema``, following $refs into the components."""
    if "$ref" in schema:
        yield from string_schemas(components[schema["$ref"].rsplit("/", 1)[1]], components)
        return
    if schema.get("type") == "string":
        yield schema
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from string_schemas(option, components)
    for value in schema.get("properties", {}).values():
        yield from string_schemas(value, components)
    if isinstance(schema.get("items"), dict):
        yield from string_schemas(schema["items"], components)


def test_every_string_a_route_takes_refuses_control_characters():
    """The spec's own account: a route added later with a bare ``str`` fails here."""
    spec = create_app(Services(config=EdgeConfig(), store=None)).openapi()  # type: ignore[arg-type]
    components = spec["components"]["schemas"]
    checked = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            parameters = operation.get("parameters", [])
            inputs = [(f"{p['in']} {p['name']}", p["schema"]) for p in parameters]
            for media, body in operation.get("requestBody", {}).get("content", {}).items():
                inputs.append((f"body {media}", body["schema"]))
            for where, schema in inputs:
                for string in string_schemas(schema, components):
                    if "enum" in string or string.get("format") in ("date-time", "binary"):
                        continue  # the type itself admits no control character
                    pattern = string.get("pattern")
                    assert pattern, f"{method.upper()} {path}: {where} takes any string"
                    for bad in ("a\x00b", "a\x1bb", "a\x7f"):
                        assert not re.search(pattern, bad), (method, path, where, pattern, bad)
                    checked += 1
    assert checked >= 25


@pytest.fixture(params=["sqlite", "postgresql"])
def station(request, tmp_path):
    """A station on either database with one unit, one open lot and an operator and admin key."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'data' / 'qc.db'}"
    store = UnitStore(url, tmp_path / "data")
    unit = store.add(_new_unit(T0), original_rgb=IMAGE, heatmap_rgb=IMAGE, overlay_rgb=IMAGE)
    store.lots.open(NewLot(station="station-1", po="PO-1", style="tee", lot_size=50,
                           opened_by="op"))
    headers = {"Authorization": f"Bearer {store.keys.create('admin-key', 'admin')}"}
    client = TestClient(create_app(Services(config=EdgeConfig(), store=store)))
    yield client, headers, unit.id, store
    store.close()


def refused_requests(unit_id: str) -> list[tuple[str, str, dict, str]]:
    """(method, url, json body, the field the 422 must name): NUL in every kind of place, then
    other control characters that make no sense in an id (a line break, ESC, C1's NEL)."""
    lot = {"station": "station-2", "po": "PO-2", "style": "polo", "lot_size": 20}  # no lot open
    return [
        ("GET", "/api/v1/units?station=%00", {}, "station"),
        ("GET", "/api/v1/units?unit_ref=BAD%00REF", {}, "unit_ref"),
        ("GET", "/api/v1/units?verdict=fail%00", {}, "verdict"),
        ("GET", "/api/v1/units?cursor=%00", {}, "cursor"),
        ("GET", "/api/v1/units.csv?lot=%00", {}, "lot"),
        ("GET", "/api/v1/summary?camera=%00", {}, "camera"),
        ("GET", "/api/v1/units/%00", {}, "unit_id"),
        ("GET", "/api/v1/units/%00/reviews", {}, "unit_id"),
        ("GET", "/api/v1/units/%00/image.jpg", {}, "unit_id"),
        ("GET", "/api/v1/units/%00/heatmap.png", {}, "unit_id"),
        ("GET", "/api/v1/units/%00/overlay.png", {}, "unit_id"),
        ("POST", "/api/v1/units/%00/review", {"verdict": "pass"}, "unit_id"),
        ("POST", f"/api/v1/units/{unit_id}/review", {"verdict": "pass", "note": "a\x00b"}, "note"),
        ("GET", "/api/v1/lots?station=%00", {}, "station"),
        ("POST", "/api/v1/lots", {**lot, "po": "PO\x00"}, "po"),
        ("POST", "/api/v1/lots", {**lot, "style": "\x00"}, "style"),
        ("POST", "/api/v1/lots", {**lot, "colour": "navy\x00"}, "colour"),
        ("POST", "/api/v1/lots", {**lot, "size": "M\x00"}, "size"),
        ("POST", "/api/v1/lots", {**lot, "station": "st\x00"}, "station"),
        ("POST", "/api/v1/trigger", {"unit_ref": "BAD\x00REF"}, "unit_ref"),
        ("POST", "/api/v1/trigger", {"barcode": "\x00"}, "barcode"),
        ("POST", "/api/v1/trigger", {"camera": "cam\x00"}, "camera"),
        ("POST", "/api/v1/keys", {"name": "k\x00", "role": "viewer"}, "name"),
        ("DELETE", "/api/v1/keys/k%00", {}, "name"),
        ("PUT", "/api/v1/model", {"dir": "models/\x00default"}, "dir"),
        ("GET", "/api/v1/units?station=station-1%0A", {}, "station"),
        ("POST", "/api/v1/lots", {**lot, "po": "PO-2\nPO-3"}, "po"),
        ("POST", "/api/v1/trigger", {"unit_ref": "\x1b[2J"}, "unit_ref"),
        ("POST", "/api/v1/trigger", {"unit_ref": "REF\u0085"}, "unit_ref"),
        ("POST", f"/api/v1/units/{unit_id}/review", {"verdict": "pass", "note": "\x07"}, "note"),
    ]


def test_control_characters_are_refused_with_422_naming_the_field_on_both_databases(station):
    client, headers, unit_id, store = station
    for method, url, body, field in refused_requests(unit_id):
        res = client.request(method, url, headers=headers, json=body or None)
        assert res.status_code == 422, (method, url, body, res.status_code, res.text)
        detail = res.json()["detail"]
        assert [e["loc"][-1] for e in detail] == [field], (url, detail)
        assert "control character" in detail[0]["msg"], detail
    # Nothing was recorded, and nothing already recorded was touched.
    assert [lot.po for lot in store.lots.list()] == ["PO-1"]
    assert store.reviews(unit_id) == [] and [k.name for k in store.keys.list()] == ["admin-key"]
    assert client.get("/api/v1/units", headers=headers).json()["items"][0]["id"] == unit_id


def test_a_note_keeps_its_tabs_and_line_breaks(station):
    client, headers, unit_id, _ = station
    note = "thread end, not a defect\n\tchecked twice\r\n"
    res = client.post(f"/api/v1/units/{unit_id}/review", headers=headers,
                      json={"verdict": "pass", "note": note})
    assert res.status_code == 200, res.text
    assert res.json()["review"]["note"] == note
