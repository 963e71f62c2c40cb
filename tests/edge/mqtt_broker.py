"""A real mosquitto broker for the tests, on a free local port, that a test can stop and restart.

Use in a test module::

    from tests.edge.mqtt_broker import MqttBroker, Subscriber, broker  # noqa: F401  (fixture)

The broker keeps its sessions on disk (persistence), so a subscriber with a persistent session
gets the QoS 1 messages published while it was away, also across a broker restart.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").is_file() else None
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout_s: float = 10.0, what: str = "condition", step_s: float = 0.02):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def make_test_ca(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    files = {n: folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=garment-qc test CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return files


class MqttBroker:
    """``users``: name -> password, then anonymous clients are refused. ``tls``: serve TLS only,
    with a certificate from ``make_test_ca`` (``self.ca_file`` is the CA a client trusts)."""

    def __init__(self, folder: Path, *, users: dict[str, str] | None = None, tls: bool = False):
        if MOSQUITTO is None:
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.folder = folder
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {folder}/",
            # As root mosquitto would switch to its own user, who may not write the test's folder.
            "user root",
        ]
        if users:
            passwd = shutil.which("mosquitto_passwd")
            if passwd is None:
                pytest.skip("mosquitto_passwd is not installed")
            password_file = folder / "passwords"
            for i, (name, password) in enumerate(users.items()):
                create = ["-c"] if i == 0 else []
                subprocess.run([passwd, *create, "-b", str(password_file), name, password], check=True)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        self.ca_file: Path | None = None
        if tls:
            certs = make_test_ca(folder)
            self.ca_file = certs["ca.crt"]
            lines += [
                f"cafile {certs['ca.crt']}",
                f"certfile {certs['server.crt']}",
                f"keyfile {certs['server.key']}",
            ]
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.folder / "mosquitto.log", "ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=log)
        log.close()

        def accepting() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "mosquitto exited: " + (self.folder / "mosquitto.log").read_text()[-2000:]
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(accepting, 10.0, f"mosquitto on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def broker(tmp_path: Path):
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    b = MqttBroker(folder)
    b.start()
    yield b
    b.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Subscriber:
    """A paho client subscribed to ``topic`` (QoS 1, persistent session) that keeps what arrives."""

    port: int
    topic: str = "#"
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self):
        import paho.mqtt.client as mqtt

        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"test-subscriber-{self.port}",
            clean_session=False,
        )
        self.client.reconnect_delay_set(1, 1)
        if self.username is not None:
            self.client.username_pw_set(self.username, self.password)
        if self.ca_file is not None:
            self.client.tls_set(ca_certs=str(self.ca_file))
        self.client.on_connect = lambda c, *_: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("the test subscriber could not subscribe")

    def _on_message(self, _client, _userdata, message) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, message.payload, bool(message.retain)))

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
