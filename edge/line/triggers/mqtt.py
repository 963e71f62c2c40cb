"""Trigger requests by MQTT: messages on ``qc/<line>/<station>/trigger`` with a JSON payload
``{"unit_ref": "..."}`` (or ``"barcode"``; ``"camera"`` to aim at one camera; ``{}`` for none).

paho's own network thread keeps the subscription: it reconnects with capped backoff when the
broker goes away and subscribes again on every connect (the session is clean). A message that is
not such a JSON object is logged and counted, never fatal.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Protocol

from edge.line.mqtt import new_client, topics
from edge.line.triggers.base import TriggerContext
from edge.line.triggers.config import MqttTriggerConfig
from edge.text_fields import control_character_problem


class TriggerRequests(Protocol):
    """What the listener hands a message to: the camera's external trigger (edge.line.triggers.
    external, which builds the listener; named by shape here, so neither imports the other)."""

    def request(self, unit_ref: str | None, *, via: str = "rest") -> int: ...


log = logging.getLogger(__name__)

MAX_REF_CHARS = 128


class BadTriggerMessage(ValueError):
    pass


def parse_trigger_payload(payload: bytes) -> tuple[str | None, str | None]:
    """(unit_ref, camera) from a message; raises BadTriggerMessage naming the problem."""
    try:
        data = json.loads(payload.decode("utf-8")) if payload.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadTriggerMessage(f"payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadTriggerMessage(f"payload must be a JSON object, got {type(data).__name__}")
    unknown = set(data) - {"unit_ref", "barcode", "camera", "station"}
    if unknown:
        raise BadTriggerMessage(f"unknown keys {sorted(unknown)}")
    ref, barcode, camera = data.get("unit_ref"), data.get("barcode"), data.get("camera")
    for name, value in (("unit_ref", ref), ("barcode", barcode), ("camera", camera)):
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= MAX_REF_CHARS):
            raise BadTriggerMessage(f"{name} must be a string of 1 to {MAX_REF_CHARS} characters")
        problem = None if value is None else control_character_problem(value)
        if problem is not None:  # the rule of the REST API's strings (edge.text_fields)
            raise BadTriggerMessage(f"{name} {problem}")
    if ref is not None and barcode is not None and ref != barcode:
        raise BadTriggerMessage(f"unit_ref {ref!r} and barcode {barcode!r} differ")
    return ref if ref is not None else barcode, camera


class MqttTriggerListener:
    def __init__(self, config: MqttTriggerConfig, trigger: TriggerRequests, context: TriggerContext):
        self.config = config
        self.trigger = trigger
        self.context = context
        self.topic = topics("qc", context.line, context.station)["trigger"]
        self._lock = threading.Lock()
        self.connected = False
        self.messages = 0
        self.rejected = 0
        self.last_problem: str | None = None
        self.client = new_client(
            config, f"qc-trigger-{context.station}-{context.camera}", clean_session=True
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=int(max(1, config.reconnect_max_s)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        # connect_async: a broker that is down at start is retried by the loop, not fatal.
        self.client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            with self._lock:
                self.last_problem = f"broker refused the connection: {reason_code}"
            return
        client.subscribe(self.topic, qos=1)
        with self._lock:
            self.connected, self.last_problem = True, None
        log.info("camera %s listens for triggers on mqtt://%s:%d/%s", self.context.camera,
                 self.config.host, self.config.port, self.topic)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        with self._lock:
            self.connected = False
            self.last_problem = f"disconnected from the broker: {reason_code}"

    def _on_message(self, _client, _userdata, message) -> None:
        try:
            unit_ref, camera = parse_trigger_payload(message.payload)
            if camera is not None and camera != self.context.camera:
                return  # meant for another camera of this station
            self.trigger.request(unit_ref, via="mqtt")
            with self._lock:
                self.messages += 1
        except Exception as exc:  # BadTriggerMessage, TriggerBusy: the listener must go on
            with self._lock:
                self.rejected += 1
                n = self.rejected
            if n == 1 or n % 100 == 0:
                log.warning("camera %s: trigger message on %s refused (%d so far): %s",
                            self.context.camera, message.topic, n, exc)

    def problems(self) -> list[str]:
        with self._lock:
            if self.connected:
                return []
            why = self.last_problem or "not connected yet"
        return [f"MQTT trigger broker {self.config.host}:{self.config.port}: {why}"]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "topic": self.topic,
                "connected": self.connected,
                "messages": self.messages,
                "rejected": self.rejected,
            }
