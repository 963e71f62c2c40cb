"""Configuration of the station's outputs: MQTT, webhooks and reject signals to the line.

Every output is off by default, so a station with no ``outputs:`` block behaves as before.
Secrets (the MQTT password, a webhook's signing secret) are ``SecretStr``: they never show in a
repr, a log line or an error message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    Discriminator,
    Field,
    SecretStr,
    Tag,
    model_validator,
)

from edge.line.mqtt_config import MqttBrokerConfig
from qc.strict import Strict


class QueueConfig(Strict):
    """The bounded queue between the line and one output's own thread."""

    size: int = Field(
        1000, ge=1, le=1_000_000,
        description="units waiting for this output; when full the oldest is dropped and counted",
    )


class BackoffConfig(Strict):
    """How an output retries a unit after a transient failure (connection error, 5xx, timeout)."""

    tries: int = Field(5, ge=1, le=1000, description="attempts per unit, the first included")
    initial_s: float = Field(0.5, gt=0, le=3600, description="wait before the second attempt")
    max_s: float = Field(30.0, gt=0, le=3600, description="longest wait; the wait doubles per try")


class MqttOutputConfig(MqttBrokerConfig):
    """Every unit on ``<prefix>/<line>/<station>/unit``, fails also on ``.../reject`` (JSON, QoS 1)."""

    enabled: bool = Field(False, description="publish units to an MQTT broker")
    host: str = Field("127.0.0.1", min_length=1, description="broker host name or address")
    topic_prefix: str = Field(
        "qc", min_length=1, pattern=r"^[^#+]+$",
        description="first topic level(s); no wildcards (# +)",
    )
    qos: Literal[0, 1, 2] = Field(1, description="MQTT quality of service of the unit messages")
    client_id: str | None = Field(
        None, description="MQTT client id; None: qc-<station>-<random>"
    )
    reconnect_min_s: int = Field(1, ge=1, le=3600, description="first wait before reconnecting")
    reconnect_max_s: int = Field(30, ge=1, le=3600, description="longest wait between reconnects")
    queue: QueueConfig = Field(default_factory=QueueConfig)


class WebhookConfig(Strict):
    """POST each unit's JSON to a URL, retrying connection errors and 5xx answers."""

    name: str = Field(
        "webhook", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
        description="name in metrics and health (unique among outputs)",
    )
    url: str = Field(pattern=r"^https?://\S+$", description="where the JSON is POSTed")
    # Not "on": YAML 1.1 reads the key `on` as the boolean true.
    when: Literal["all", "fail"] = Field(
        "all", description="send every unit, or only the units the model failed"
    )
    timeout_s: float = Field(5.0, gt=0, le=300, description="connect + answer timeout per try")
    retry: BackoffConfig = Field(default_factory=BackoffConfig)
    secret: SecretStr | None = Field(
        None, description="when set, the body's HMAC-SHA256 goes in the signature header (never logged)"
    )
    signature_header: str = Field(
        "X-QC-Signature", pattern=r"^[A-Za-z0-9-]+$",
        description="header carrying 'sha256=<hex digest>' of the body",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra request headers (e.g. an API key of the receiver)"
    )
    queue: QueueConfig = Field(default_factory=QueueConfig)


class _RejectCommon(Strict):
    name: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
        description="name in metrics and health (unique among outputs); None: reject-<type>",
    )
    when: Literal["fail", "fail_or_review"] = Field(
        "fail", description="signal failed units only, or also units that need a review"
    )
    max_age_s: float | None = Field(
        5.0, gt=0, le=3600,
        description="a unit older than this (since it was stored) is not signalled: the garment "
        "has moved on, and a late reject would throw out the wrong one. None: no limit",
    )
    retry: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(tries=3, initial_s=0.1, max_s=1.0)
    )
    queue: QueueConfig = Field(default_factory=lambda: QueueConfig(size=100))

    @property
    def output_name(self) -> str:
        return self.name or f"reject-{self.type}"  # type: ignore[attr-defined]


class ModbusRejectConfig(_RejectCommon):
    """Pulse a coil of a PLC over Modbus TCP for each rejected unit."""

    type: Literal["modbus"]
    host: str = Field(min_length=1, description="PLC host name or address")
    port: int = Field(502, ge=1, le=65535, description="Modbus TCP port")
    device_id: int = Field(
        1, ge=0, le=255, description="Modbus unit id of the PLC (the 'slave' id)"
    )
    address: int = Field(ge=0, le=65535, description="coil address (0-based) that rejects the unit")
    pulse_ms: float = Field(
        200.0, gt=0, le=60_000, description="how long the coil stays set before it is reset"
    )
    timeout_s: float = Field(1.0, gt=0, le=60, description="answer timeout per Modbus request")


class LogRejectConfig(_RejectCommon):
    """Write a line in the station's log for each rejected unit (commissioning, dry runs)."""

    type: Literal["log"]


class PluginRejectConfig(_RejectCommon):
    """A third-party reject signal, found in the entry-point group ``garment_qc.reject_signals``."""

    type: str = Field(
        min_length=1, description="entry-point name of the plugin in garment_qc.reject_signals"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="handed to the plugin's factory as keyword arguments"
    )


BUILTIN_REJECT_TYPES = ("modbus", "log")


def _reject_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in BUILTIN_REJECT_TYPES else "plugin"


RejectSignalConfig = Annotated[
    Union[
        Annotated[ModbusRejectConfig, Tag("modbus")],
        Annotated[LogRejectConfig, Tag("log")],
        Annotated[PluginRejectConfig, Tag("plugin")],
    ],
    Discriminator(_reject_kind),
]


class OutputsConfig(Strict):
    """Where each stored unit goes besides the database. All off by default."""

    mqtt: MqttOutputConfig = Field(default_factory=MqttOutputConfig)
    webhooks: list[WebhookConfig] = Field(
        default_factory=list, description="HTTP endpoints that receive units"
    )
    reject_signals: list[RejectSignalConfig] = Field(
        default_factory=list, description="signals to the line's PLC for each rejected unit"
    )
    links_base_url: str | None = Field(
        None, pattern=r"^https?://\S+[^/]$",
        description="prefix for the image links in the messages (e.g. http://station-1:8000); "
        "None: paths such as /api/v1/units/<id>/image.jpg",
    )
    drain_timeout_s: float = Field(
        5.0, ge=0, le=600, description="on shutdown, how long outputs may take to send what is queued"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> OutputsConfig:
        names = (["mqtt"] if self.mqtt.enabled else []) + [w.name for w in self.webhooks]
        names += [r.output_name for r in self.reject_signals]
        seen = {n for n in names if names.count(n) > 1}
        if seen:
            raise ValueError(f"output names must be unique; repeated: {sorted(seen)}")
        return self

    @property
    def any_enabled(self) -> bool:
        return self.mqtt.enabled or bool(self.webhooks) or bool(self.reject_signals)
