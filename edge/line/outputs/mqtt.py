"""MQTT output (paho-mqtt 2.x): every unit on ``<prefix>/<line>/<station>/unit``, fails also on
``.../reject``, and the station's presence on ``.../status`` (retained ``online``; the broker
publishes ``offline`` as the last will when the station drops off).

paho's network thread (loop_start) keeps the connection and reconnects with its own doubling
backoff (reconnect_delay_set). This output's thread waits while the broker is away, so units queue
up in the output's bounded queue (oldest dropped and counted when full) and are sent when the
broker is back. Delivery is at least once (QoS 1): a consumer keys on the unit's ``id``.
"""

from __future__ import annotations

import logging
import secrets
import threading
from datetime import datetime, timezone
from typing import Any

from edge.line.mqtt import new_client, topic_level, topics
from edge.line.outputs.base import Output, Unreachable
from edge.line.outputs.config import MqttOutputConfig, OutputsConfig
from edge.line.outputs.registry import StationInfo, register_output

log = logging.getLogger(__name__)

WAIT_SLICE_S = 0.2  # how often a waiting send looks at the stop event


class MqttOutput(Output):
    def __init__(self, config: MqttOutputConfig, station: StationInfo):
        self.config = config
        self.name = "mqtt"
        self.target = f"mqtt broker {config.host}:{config.port}"
        self.queue_size = config.queue.size
        self.station = station
        self._status_topic = topics(config.topic_prefix, station.line, station.id)["status"]
        self._connected = threading.Event()
        self._state_lock = threading.Lock()
        self._down_since: str | None = None
        self._down_reason: str | None = None
        self._closing = False
        self._refused = False  # the last connect attempt was answered with a refusal
        # mids the broker acknowledged (on_publish) that a send is, or will be, waiting for
        self._acked: set[int] = set()
        self._status_mids: set[int] = set()
        self._ack_cond = threading.Condition()
        client_id = config.client_id or f"qc-{topic_level(station.id)}-{secrets.token_hex(4)}"
        self.client = new_client(config, client_id)
        self.client.will_set(self._status_topic, b"offline", qos=1, retain=True)
        self.client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_publish = self._on_publish
        self.client.connect_async(config.host, config.port, keepalive=config.keepalive_s)
        self.client.loop_start()

    # -- paho callbacks (its network thread) -------------------------------------------------------

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self._went_down(f"the broker refused the connection: {reason_code}", refused=True)
            return
        with self._state_lock:
            if self._down_since is not None:
                log.info("%s reachable again", self.target)
            self._down_since = None
            self._down_reason = None
            self._refused = False
        info = client.publish(self._status_topic, b"online", qos=1, retain=True)
        with self._ack_cond:
            self._status_mids.add(info.mid)
        self._connected.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self._went_down(f"disconnected: {reason_code}")

    def _on_publish(self, _client, _userdata, mid, _reason_code, _properties) -> None:
        with self._ack_cond:
            if mid in self._status_mids:
                self._status_mids.discard(mid)
            else:
                self._acked.add(mid)
                self._ack_cond.notify_all()

    def _on_connect_fail(self, _client, _userdata) -> None:
        with self._state_lock:
            self._refused = False  # no answer at all now: that is the news
        self._went_down(
            "connection failed (TCP or TLS handshake)" if self.config.tls else "connection failed"
        )

    def _went_down(self, reason: str, *, refused: bool = False) -> None:
        self._connected.clear()
        if self._closing:
            return
        with self._state_lock:
            if self._down_since is None:
                self._down_since = datetime.now(timezone.utc).isoformat(timespec="seconds")
                log.warning("%s unreachable: %s; reconnecting", self.target, reason)
            # The disconnect that follows a refused login says only "Unspecified error": the
            # refusal (bad credentials, not authorized) is what a person needs to read.
            if refused or not self._refused:
                self._down_reason = reason
            self._refused = self._refused or refused

    # -- Output ------------------------------------------------------------------------------------

    def problem(self) -> str | None:
        with self._state_lock:
            if self._down_since is None:
                return None
            return f"{self.target} unreachable since {self._down_since} ({self._down_reason})"

    def send(self, unit: dict[str, Any], body: bytes, stop: threading.Event) -> None:
        names = topics(self.config.topic_prefix, unit["line"], unit["station"])
        wanted = [names["unit"]] + ([names["reject"]] if unit.get("verdict") == "fail" else [])
        self._wait_connected(stop)
        mids = [self.client.publish(t, body, qos=self.config.qos).mid for t in wanted]
        # A QoS 1/2 message stays in paho's session and is sent again after a reconnect, so the
        # wait goes on across an outage instead of publishing a second copy.
        with self._ack_cond:
            while not all(m in self._acked for m in mids):
                if stop.is_set():
                    raise Unreachable(f"{self.target}: stopped before the broker acknowledged")
                self._ack_cond.wait(WAIT_SLICE_S)
            self._acked.difference_update(mids)

    def _wait_connected(self, stop: threading.Event) -> None:
        while not self._connected.wait(WAIT_SLICE_S):
            if stop.is_set():
                raise Unreachable(f"{self.target} unreachable")

    def close(self) -> None:
        self._closing = True
        if self._connected.is_set():
            try:  # a clean goodbye; the broker's last will says the same when this fails
                info = self.client.publish(self._status_topic, b"offline", qos=1, retain=True)
                info.wait_for_publish(1.0)
            except (RuntimeError, ValueError) as exc:
                log.info("%s: no clean offline status: %s", self.target, exc)
        self.client.disconnect()
        self.client.loop_stop()


@register_output("mqtt")
def build_mqtt(config: OutputsConfig, station: StationInfo) -> list[Output]:
    return [MqttOutput(config.mqtt, station)] if config.mqtt.enabled else []
