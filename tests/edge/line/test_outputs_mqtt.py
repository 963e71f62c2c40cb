"""The MQTT output against a real mosquitto broker that the tests start (and stop, and restart)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from edge.api.app import Services, create_app
from edge.config import EdgeConfig
from edge.line.mqtt import topics
from edge.line.outputs.config import MqttOutputConfig, OutputsConfig
from edge.line.outputs.dispatcher import StationInfo, build_outputs
from tests.edge.conftest import T0
from tests.edge.mqtt_broker import MqttBroker, Subscriber, broker, wait_until  # noqa: F401

STATION = StationInfo("station-1", "line-1")
UNIT = "qc/line-1/station-1/unit"
REJECT = "qc/line-1/station-1/reject"
STATUS = "qc/line-1/station-1/status"


def mqtt_outputs(port: int, **mqtt):
    config = OutputsConfig(
        mqtt=MqttOutputConfig(
            enabled=True, port=port, reconnect_min_s=1, reconnect_max_s=1, **mqtt
        ),
        drain_timeout_s=2.0,
    )
    return build_outputs(config, STATION)


def test_every_unit_on_the_unit_topic_and_fails_also_on_the_reject_topic(broker, add_unit, store):
    subscriber = Subscriber(broker.port)
    outputs = mqtt_outputs(broker.port)
    try:
        records = [
            add_unit(T0 + timedelta(seconds=i), seed=i, verdict=v, score=s)
            for i, (v, s) in enumerate([("pass", 0.1), ("fail", 0.9), ("pass", 0.2)])
        ]
        for record in records:
            outputs.on_unit(None, record)

        wait_until(lambda: len(subscriber.on(UNIT)) == 3, what="3 unit messages")
        wait_until(lambda: len(subscriber.on(REJECT)) == 1, what="1 reject message")
        units = [m.json() for m in subscriber.on(UNIT)]
        assert [u["id"] for u in units] == [r.id for r in records]  # in the line's order
        assert [u["verdict"] for u in units] == ["pass", "fail", "pass"]
        first = units[0]
        assert first["station"] == "station-1" and first["line"] == "line-1"
        assert first["score"] == pytest.approx(0.1)
        assert first["model_name"] == "dark_spot" and "camera" in first and "lot" in first
        assert first["links"] == {
            "image": f"/api/v1/units/{records[0].id}/image.jpg",
            "heatmap": f"/api/v1/units/{records[0].id}/heatmap.png",
            "overlay": f"/api/v1/units/{records[0].id}/overlay.png",
        }
        assert subscriber.on(REJECT)[0].json()["id"] == records[1].id
        wait_until(lambda: subscriber.on(STATUS), what="the station's status")
        assert subscriber.on(STATUS)[-1].payload == b"online"

        app = create_app(Services(config=EdgeConfig(), store=store), outputs)
        with TestClient(app) as client:
            wait_until(lambda: outputs.snapshot()["mqtt"]["sent"] == 3, what="3 sent")
            metrics = client.get("/metrics").text
            assert 'qc_outputs_sent_total{output="mqtt"} 3.0' in metrics
            assert 'qc_outputs_dropped_total{output="mqtt"} 0.0' in metrics
            assert 'qc_outputs_failed_total{output="mqtt"} 0.0' in metrics
            health = client.get("/healthz").json()
            assert not [p for p in health["problems"] if "mqtt" in p]  # (no model here: degraded)
            assert health["outputs"]["mqtt"]["sent"] == 3
    finally:
        outputs.close()
    wait_until(lambda: subscriber.on(STATUS)[-1].payload == b"offline", what="status offline")
    subscriber.close()


def test_broker_down_and_back_the_output_reconnects_and_the_queue_drops_its_oldest(
    broker, add_unit, store
):
    subscriber = Subscriber(broker.port)
    outputs = mqtt_outputs(broker.port, queue={"size": 2})
    app = create_app(Services(config=EdgeConfig(), store=store), outputs)
    units = iter(add_unit(T0 + timedelta(seconds=i), seed=i) for i in range(10))
    try:
        with TestClient(app) as client:
            sent = [next(units)]
            outputs.on_unit(None, sent[0])
            wait_until(lambda: len(subscriber.on(UNIT)) == 1, what="the first unit")

            broker.stop()
            down = f"mqtt broker 127.0.0.1:{broker.port} unreachable since"

            def mqtt_problems():
                return [p for p in client.get("/healthz").json()["problems"] if down in p]

            problem = wait_until(mqtt_problems, what="/healthz to name the broker")
            assert client.get("/healthz").json()["status"] == "degraded"
            assert "T" in problem[0].split("since ")[1]  # an ISO time a person can read

            # While the broker is away: one unit waits in the output's thread, the queue keeps the
            # newest two, and the two before them are dropped (counted). The line never waits.
            waiting = next(units)
            outputs.on_unit(None, waiting)
            wait_until(lambda: outputs.snapshot()["mqtt"]["queued"] == 0, what="the unit taken")
            during = [next(units) for _ in range(4)]
            for record in during:
                outputs.on_unit(None, record)
            figures = outputs.snapshot()["mqtt"]
            assert (figures["dropped"], figures["queued"], figures["sent"]) == (2, 2, 1)
            metrics = client.get("/metrics").text
            assert 'qc_outputs_dropped_total{output="mqtt"} 2.0' in metrics

            broker.start()
            wait_until(lambda: outputs.snapshot()["mqtt"]["sent"] == 4, what="the backlog sent")
            later = next(units)
            outputs.on_unit(None, later)
            expected = [sent[0].id, waiting.id, during[2].id, during[3].id, later.id]
            wait_until(
                lambda: [m.json()["id"] for m in subscriber.on(UNIT)] == expected,
                timeout_s=15, what="the units after the broker came back",
            )
            wait_until(lambda: not mqtt_problems(), what="/healthz to clear")
            assert outputs.snapshot()["mqtt"] == {
                "sent": 5, "failed": 0, "dropped": 2, "queued": 0, "problem": None
            }
    finally:
        outputs.close()
        subscriber.close()


def test_credentials_log_in_and_a_wrong_password_shows_in_health_never_in_the_log(
    tmp_path, add_unit, caplog
):
    caplog.set_level(logging.DEBUG)
    broker = MqttBroker(tmp_path, users={"station": "right-pass", "reader": "reader-pass"})
    broker.start()
    subscriber = Subscriber(broker.port, username="reader", password="reader-pass")
    good = mqtt_outputs(broker.port, username="station", password="right-pass")
    bad = mqtt_outputs(broker.port, username="station", password="wrong-pass", client_id="bad")
    try:
        record = add_unit(T0)
        good.on_unit(None, record)
        wait_until(lambda: subscriber.on(UNIT), what="the unit, sent with credentials")
        assert subscriber.on(UNIT)[0].json()["id"] == record.id
        problem = wait_until(bad.problems, what="the refused login in health")[0]
        assert problem.startswith(f"mqtt broker 127.0.0.1:{broker.port} unreachable since")
        assert "not authori" in problem.lower()
    finally:
        good.close()
        bad.close()
        subscriber.close()
        broker.stop()
    assert "right-pass" not in caplog.text and "wrong-pass" not in caplog.text


def test_tls_with_the_brokers_ca(tmp_path, add_unit):
    broker = MqttBroker(tmp_path, tls=True)
    broker.start()
    subscriber = Subscriber(broker.port, ca_file=broker.ca_file)
    outputs = mqtt_outputs(broker.port, tls={"ca_file": broker.ca_file})
    untrusting = mqtt_outputs(broker.port, client_id="no-ca", tls={})  # system CAs only
    try:
        record = add_unit(T0, verdict="fail")
        outputs.on_unit(None, record)
        wait_until(lambda: subscriber.on(REJECT), what="the unit over TLS")
        assert subscriber.on(REJECT)[0].json()["id"] == record.id
        problem = wait_until(untrusting.problems, what="an untrusted broker in health")[0]
        assert f"mqtt broker 127.0.0.1:{broker.port} unreachable since" in problem
    finally:
        outputs.close()
        untrusting.close()
        subscriber.close()
        broker.stop()


def test_topics_never_gain_levels_or_wildcards_from_names():
    assert topics("plant/qc", "line 1/a", "st+#")["unit"] == "plant/qc/line 1_a/st__/unit"


def test_password_is_secret_and_needs_a_user():
    config = MqttOutputConfig(enabled=True, username="qc", password="hunter2")
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.model_dump())
    with pytest.raises(ValidationError, match="password needs a username"):
        MqttOutputConfig(enabled=True, password="hunter2")
    with pytest.raises(ValidationError, match="extra"):
        OutputsConfig.model_validate({"mqtt": {"enabled": True, "hots": "x"}})


def test_outputs_are_off_by_default():
    config = EdgeConfig()
    assert not config.outputs.any_enabled
    outputs = build_outputs(config.outputs, STATION)
    assert outputs.names == [] and outputs.snapshot() == {} and outputs.problems() == []
    outputs.close()


@pytest.mark.slow
def test_qc_edge_publishes_every_stored_unit(broker, tmp_path, tiny_model_dir):
    """The service as an operator runs it, with `outputs.mqtt.*` overrides: what it stores, it
    publishes; on SIGTERM it drains and says offline."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from tests.edge.mqtt_broker import free_port

    repo = Path(__file__).resolve().parents[3]
    subscriber = Subscriber(broker.port)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "edge.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qc", "edge", "--config", "configs/edge/default.yaml",
         f"api.port={port}", f"storage.data_dir={tmp_path / 'var'}", f"model.dir={tiny_model_dir}",
         "source.fps=10", "source.size_px=[120,160]", "source.defect_probability=0.5",
         "outputs.mqtt.enabled=true", f"outputs.mqtt.port={broker.port}"],
        cwd=repo, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
    )

    def edge_log() -> str:
        return (tmp_path / "edge.log").read_text(errors="replace")

    try:
        wait_until(lambda: len(subscriber.on(UNIT)) >= 5 or proc.poll() is not None,
                   timeout_s=60, what="5 units published")
        assert proc.poll() is None, edge_log()
        for message in subscriber.on(UNIT)[:5]:
            unit = message.json()
            with urllib.request.urlopen(f"{base}/api/v1/units/{unit['id']}", timeout=5) as res:
                stored = json.loads(res.read())
            assert stored["id"] == unit["id"] and stored["verdict"] == unit["verdict"]
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as res:
            assert 'qc_outputs_sent_total{output="mqtt"}' in res.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
    assert proc.returncode == 0, edge_log()
    wait_until(lambda: subscriber.on(STATUS)[-1].payload == b"offline", what="status offline")
    units = [m.json() for m in subscriber.on(UNIT)]
    fails = [u["id"] for u in units if u["verdict"] == "fail"]
    assert [m.json()["id"] for m in subscriber.on(REJECT)] == fails
    subscriber.close()
    from edge.storage.store import UnitStore

    stored = UnitStore(f"sqlite:///{tmp_path / 'var' / 'qc.db'}", tmp_path / "var")
    try:  # none lost between the store and the broker, none twice
        assert stored.count() == len(units) == len({u["id"] for u in units})
    finally:
        stored.close()
    print(f"{len(units)} units published, {len(fails)} of them fails")


def test_the_commented_example_in_default_yaml_is_valid():
    """The example block a person uncomments must load as it stands."""
    from pathlib import Path

    import yaml

    lines = (Path(__file__).resolve().parents[3] / "configs/edge/default.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# outputs:"))
    block = "\n".join(line[2:] for line in lines[start:] if line.startswith("# "))
    outputs = EdgeConfig.model_validate(yaml.safe_load(block)).outputs
    assert outputs.mqtt.enabled and outputs.webhooks[0].when == "fail"
    assert [r.type for r in outputs.reject_signals] == ["modbus"]
