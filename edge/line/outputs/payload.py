"""The JSON a stored unit is sent as: edge.units.UnitOut, as the REST API gives it (camera and lot
included).

One shape for every consumer: a message from MQTT or a webhook reads like GET /api/v1/units/<id>.
Receivers should treat ``id`` as the key: MQTT QoS 1 and webhook retries deliver at least once,
so a unit can arrive twice.
"""

from __future__ import annotations

import json
from typing import Any

from edge.units import UnitOut, UnitRecord


def unit_payload(record: UnitRecord, *, links_base_url: str | None = None) -> dict[str, Any]:
    payload = UnitOut.from_record(record).model_dump(mode="json")
    if links_base_url:
        payload["links"] = {k: links_base_url + v for k, v in payload["links"].items()}
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the same bytes for every output (a webhook signs exactly these)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
