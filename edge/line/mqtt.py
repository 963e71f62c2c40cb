"""The station's one way to talk MQTT: its topics and a paho client made from a broker config
(edge.line.mqtt_config), for the MQTT output and the MQTT trigger listener alike."""

from __future__ import annotations

from typing import Any

from edge.line.mqtt_config import MqttBrokerConfig

TOPIC_KINDS = ("unit", "reject", "status", "trigger")


def topic_level(text: str) -> str:
    """A station or line name as one topic level: '/' would add levels, '+' and '#' are wildcards."""
    return text.replace("/", "_").replace("+", "_").replace("#", "_")


def topics(prefix: str, line: str, station: str) -> dict[str, str]:
    """``<prefix>/<line>/<station>/<kind>`` for every kind of message a station sends or takes."""
    base = f"{prefix.rstrip('/')}/{topic_level(line)}/{topic_level(station)}"
    return {kind: f"{base}/{kind}" for kind in TOPIC_KINDS}


def new_client(broker: MqttBrokerConfig, client_id: str, **kwargs: Any):
    """A paho 2.x client with the broker's login and TLS set; not connected yet."""
    import paho.mqtt.client as mqtt  # only where MQTT is used

    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, **kwargs
    )
    if broker.username is not None:
        password = broker.password.get_secret_value() if broker.password else None
        client.username_pw_set(broker.username, password)
    if broker.tls is not None:
        tls = broker.tls
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
        )
        client.tls_insecure_set(tls.insecure)
    return client
