"""Several cameras on one station, and the context every unit records (camera, unit_ref, lot)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from edge.config import EdgeConfig, load_config
from qc.overrides import ConfigError
from tests.edge.conftest import T0

LOT = {"po": "PO-4711", "style": "polo", "colour": "navy", "size": "M", "lot_size": 500}


def test_units_record_the_whole_lot_context_and_filter_by_camera_and_unit_ref(api, auth, add_unit):
    before = add_unit(T0, camera="top")
    lot = api.post("/api/v1/lots", json=LOT, headers=auth["operator"]).json()
    inside = add_unit(T0 + timedelta(seconds=1), camera="bottom", unit_ref="SKU-1|0001")
    assert (inside.lot, inside.po, inside.style, inside.colour, inside.size) == (
        str(lot["id"]), "PO-4711", "polo", "navy", "M")
    assert (before.po, before.colour, before.size) == (None, None, None)

    shown = api.get(f"/api/v1/units/{inside.id}").json()
    assert {k: shown[k] for k in ("lot", "po", "style", "colour", "size", "camera", "unit_ref")} == {
        "lot": str(lot["id"]), "po": "PO-4711", "style": "polo", "colour": "navy", "size": "M",
        "camera": "bottom", "unit_ref": "SKU-1|0001"}
    listed = api.get("/api/v1/units", params={"unit_ref": "SKU-1|0001"}).json()["items"]
    assert [u["id"] for u in listed] == [inside.id]
    assert [u["id"] for u in api.get("/api/v1/units", params={"camera": "top"}).json()["items"]] == [
        before.id]
    assert api.get("/api/v1/units", params={"unit_ref": ""}).status_code == 422
    csv_text = api.get("/api/v1/units.csv", params={"camera": "bottom"}).text
    assert "SKU-1|0001" in csv_text and "PO-4711" in csv_text and "navy" in csv_text
