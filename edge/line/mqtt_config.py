"""How the station reaches an MQTT broker: one config for the MQTT output and the MQTT trigger
listener alike (edge.line.mqtt makes the client from it)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from qc.strict import Strict


class MqttTlsConfig(Strict):
    ca_file: Path | None = Field(None, description="CA certificates (PEM); None: the system's")
    cert_file: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key_file: Path | None = Field(None, description="client private key (PEM) for mutual TLS")
    insecure: bool = Field(
        False, description="skip the broker hostname check (test brokers only; still encrypted)"
    )


class MqttBrokerConfig(Strict):
    host: str = Field(min_length=1, description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="broker TCP port (8883 is usual for TLS)")
    username: str | None = Field(None, description="broker user name; None: anonymous")
    password: SecretStr | None = Field(None, description="broker password (never logged)")
    tls: MqttTlsConfig | None = Field(None, description="connect over TLS with these settings")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive interval")

    @model_validator(mode="after")
    def _password_needs_user(self) -> MqttBrokerConfig:
        if self.password is not None and self.username is None:
            raise ValueError("mqtt: a password needs a username")
        return self
