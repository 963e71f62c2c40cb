"""The webhook output against a real HTTP server in a thread that fails the way receivers do."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edge.line.outputs.config import OutputsConfig
from edge.line.outputs.dispatcher import StationInfo, build_outputs
from edge.line.outputs.webhook import redacted
from tests.edge.conftest import T0
from tests.edge.mqtt_broker import free_port, wait_until

STATION = StationInfo("station-1", "line-1")
SECRET = "s3cr3t-signing-key"


class Receiver:
    """An HTTP server that answers ``fail_status`` to the first ``fail_first`` POSTs, then 200."""

    def __init__(self, fail_first: int = 0, fail_status: int = 503, delay_s: float = 0.0):
        self.fail_first = fail_first
        self.delay_s = delay_s
        self.fail_status = fail_status
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay_s)
                with receiver.lock:
                    status = 200 if len(receiver.requests) >= receiver.fail_first else receiver.fail_status
                    receiver.requests.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/qc/units"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[dict]:
        with self.lock:
            return [json.loads(body) for _, body, status in self.requests if status == 200]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    made = []

    def make(**kw) -> Receiver:
        made.append(Receiver(**kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


def webhook_outputs(url: str, **webhook):
    retry = webhook.pop("retry", {"tries": 4, "initial_s": 0.05, "max_s": 0.2})
    return build_outputs(
        OutputsConfig(webhooks=[{"url": url, "retry": retry, **webhook}], drain_timeout_s=2),
        STATION,
    )


def test_retries_5xx_with_backoff_then_delivers_a_signed_body(receiver_factory, add_unit, caplog):
    receiver = receiver_factory(fail_first=2, fail_status=503)
    outputs = webhook_outputs(receiver.url, secret=SECRET)
    caplog.set_level(logging.DEBUG)
    try:
        record = add_unit(T0, verdict="fail", score=0.8)
        outputs.on_unit(None, record)
        wait_until(lambda: receiver.delivered(), what="the unit to be delivered")
        wait_until(lambda: outputs.snapshot()["webhook"]["sent"] == 1, what="counted as sent")
    finally:
        outputs.close()
    assert [status for *_, status in receiver.requests] == [503, 503, 200]
    headers, body, _ = receiver.requests[-1]
    unit = json.loads(body)
    assert unit["id"] == record.id and unit["verdict"] == "fail"
    assert headers["content-type"] == "application/json"
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-qc-signature"] == expected
    assert outputs.snapshot()["webhook"] == {
        "sent": 1, "failed": 0, "dropped": 0, "queued": 0, "problem": None
    }
    assert SECRET not in caplog.text and expected not in caplog.text


def test_a_4xx_answer_is_counted_and_not_retried(receiver_factory, add_unit):
    receiver = receiver_factory(fail_first=1, fail_status=422)
    outputs = webhook_outputs(receiver.url)
    try:
        refused, taken = add_unit(T0, seed=1), add_unit(T0 + timedelta(seconds=1), seed=2)
        outputs.on_unit(None, refused)
        wait_until(lambda: outputs.snapshot()["webhook"]["failed"] == 1, what="the refusal counted")
        problem = outputs.problems()[0]
        assert problem.startswith(f"webhook {receiver.url} failing since ") and "422" in problem
        outputs.on_unit(None, taken)
        wait_until(lambda: outputs.snapshot()["webhook"]["sent"] == 1, what="the next unit sent")
        assert outputs.problems() == []  # a success clears it
    finally:
        outputs.close()
    assert [status for *_, status in receiver.requests] == [422, 200]  # no retry of the 422
    assert [u["id"] for u in receiver.delivered()] == [taken.id]


def test_only_fails_when_asked(receiver_factory, add_unit):
    receiver = receiver_factory()
    outputs = webhook_outputs(receiver.url, when="fail")
    try:
        units = [add_unit(T0 + timedelta(seconds=i), seed=i, verdict=v) for i, v in
                 enumerate(["pass", "fail", "pass", "fail"])]
        for u in units:
            outputs.on_unit(None, u)
        wait_until(lambda: len(receiver.delivered()) == 2, what="the two fails")
    finally:
        outputs.close()
    assert [u["id"] for u in receiver.delivered()] == [units[1].id, units[3].id]


def test_an_unreachable_receiver_is_retried_then_given_up_and_named_in_health(add_unit):
    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    outputs = webhook_outputs(url, retry={"tries": 3, "initial_s": 0.05, "max_s": 0.1})
    try:
        outputs.on_unit(None, add_unit(T0))
        wait_until(lambda: outputs.snapshot()["webhook"]["failed"] == 1, what="the unit given up")
        assert outputs.problems()[0].startswith(f"webhook {url} unreachable since ")
    finally:
        outputs.close()


def test_credentials_in_a_url_never_reach_health_or_logs():
    assert redacted("https://qc:pw@mes.local:8443/hook?x=1") == "https://mes.local:8443/hook?x=1"
    assert redacted("http://mes/hook") == "http://mes/hook"


def test_config_refuses_a_bad_url_and_repeated_names():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="url"):
        OutputsConfig.model_validate({"webhooks": [{"url": "mes.local/hook"}]})
    with pytest.raises(ValidationError, match="repeated"):
        OutputsConfig.model_validate(
            {"webhooks": [{"url": "http://a/x"}, {"url": "http://b/y"}]}
        )


def test_a_slow_receiver_never_slows_the_line(receiver_factory, add_unit):
    """The pipeline's writer calls on_unit; with a receiver taking 0.5 s per unit, on_unit still
    returns at once, the queue keeps the newest units and counts the ones it dropped."""
    receiver = receiver_factory(delay_s=0.5)
    outputs = build_outputs(
        OutputsConfig(webhooks=[{"url": receiver.url, "queue": {"size": 3}}], drain_timeout_s=0),
        STATION,
    )
    records = [add_unit(T0 + timedelta(seconds=i), seed=i) for i in range(20)]
    try:
        outputs.on_unit(None, records[0])
        wait_until(lambda: outputs.snapshot()["webhook"]["queued"] == 0, what="the first taken")
        started = time.monotonic()
        for record in records[1:]:
            outputs.on_unit(None, record)
        elapsed_s = time.monotonic() - started
        # Waiting for the receiver would take 19 x 0.5 s; the bound is loose for a busy machine.
        assert elapsed_s < 2.0, f"on_unit took {elapsed_s:.3f} s for 19 units"
        figures = outputs.snapshot()["webhook"]
        # one unit in the receiver's hands, three queued, the rest dropped
        assert figures["queued"] == 3 and figures["dropped"] == 16
        wait_until(lambda: len(receiver.delivered()) == 4, what="the kept units", timeout_s=10)
    finally:
        outputs.close()
    assert [u["id"] for u in receiver.delivered()] == [records[0].id] + [r.id for r in records[-3:]]


def test_links_can_be_absolute_for_receivers_elsewhere(receiver_factory, add_unit):
    receiver = receiver_factory()
    outputs = build_outputs(
        OutputsConfig(webhooks=[{"url": receiver.url}], links_base_url="http://station-1:8000"),
        STATION,
    )
    try:
        record = add_unit(T0)
        outputs.on_unit(None, record)
        wait_until(receiver.delivered, what="the unit")
    finally:
        outputs.close()
    links = receiver.delivered()[0]["links"]
    assert links["image"] == f"http://station-1:8000/api/v1/units/{record.id}/image.jpg"


def test_a_unit_that_cannot_be_encoded_is_logged_never_raised_into_the_line(
    receiver_factory, caplog
):
    receiver = receiver_factory()
    outputs = webhook_outputs(receiver.url)
    try:
        class Broken:
            id = "0" * 32

        outputs.on_unit(None, Broken())  # the pipeline's writer must go on to the next unit
    finally:
        outputs.close()
    assert "could not be handed to the outputs" in caplog.text and receiver.requests == []
