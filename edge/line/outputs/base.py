"""What an output is, and the thread that feeds it from its own bounded queue.

The pipeline's writer hands each stored unit to every output's queue and goes on at once: a slow
or dead broker, webhook or PLC fills its own queue (the oldest unit is dropped and counted when it
is full) and never slows the line. Each output runs in its own thread, so one stuck output does
not hold the others up either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from edge.line.outputs.config import BackoffConfig

log = logging.getLogger(__name__)


class TransientError(Exception):
    """A failure worth retrying with backoff (a timeout, a 5xx answer, a busy device)."""


class Unreachable(TransientError):
    """The other end cannot be reached at all (connection refused, no route, not connected)."""


class Output:
    """One destination of units. Subclasses implement ``send``; the rest has safe defaults.

    ``send`` raises TransientError (or Unreachable) to have the unit retried with ``retry``'s
    backoff, any other exception to give the unit up (counted as failed).
    """

    name: str = "output"
    target: str = "output"  # for people: "mqtt broker 127.0.0.1:1883", "webhook https://..."
    retry: BackoffConfig | None = None  # None: one try per unit
    max_age_s: float | None = None  # a unit waiting longer than this is given up, not sent
    queue_size: int = 1000

    def wants(self, unit: dict[str, Any]) -> bool:
        return True

    def send(self, unit: dict[str, Any], body: bytes, stop: threading.Event) -> None:
        raise NotImplementedError

    def problem(self) -> str | None:
        """What is wrong right now in words (e.g. a broker that is down), or None."""
        return None

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class _Delivery:
    unit: dict[str, Any]
    body: bytes
    offered_mono: float


def _utc_now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class OutputWorker:
    """A bounded queue (drop oldest) and one thread that sends its units, retrying with backoff."""

    def __init__(self, output: Output):
        self.output = output
        self._items: deque[_Delivery] = deque()
        self._cond = threading.Condition()
        self._draining = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"edge-output-{output.name}", daemon=True
        )
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.failing_since: str | None = None
        self.failure_kind = "failing"
        self.last_error: str | None = None
        self._failures_in_a_row = 0

    def start(self) -> None:
        self._thread.start()

    def offer(self, unit: dict[str, Any], body: bytes) -> None:
        """Queue a unit; never blocks. A full queue drops its oldest unit, counted."""
        with self._cond:
            if self._draining or self._stop.is_set():
                self.dropped += 1
                return
            if len(self._items) >= self.output.queue_size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(_Delivery(unit, body, time.monotonic()))
            self._cond.notify()

    def close(self, deadline_mono: float) -> None:
        """Send what is queued until the deadline, then stop; units still queued count as dropped."""
        with self._cond:
            self._draining = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline_mono - time.monotonic()))
        self._stop.set()
        with self._cond:
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(2.0)
        with self._cond:
            self.dropped += len(self._items)
            self._items.clear()
        try:
            self.output.close()
        except Exception:
            log.exception("output %s did not close cleanly", self.output.name)

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {
                "sent": self.sent,
                "failed": self.failed,
                "dropped": self.dropped,
                "queued": len(self._items),
                "problem": self.problem(),
            }

    def problem(self) -> str | None:
        try:
            live = self.output.problem()
        except Exception as exc:  # a broken health probe must not break /healthz
            live = f"{self.output.target}: health check failed: {exc}"
        if live:
            return live
        if self.failing_since is not None:
            return (
                f"{self.output.target} {self.failure_kind} since {self.failing_since}: "
                f"{self.last_error}"
            )
        return None

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._draining and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set() or not self._items:
                    return
                delivery = self._items.popleft()
            self._deliver(delivery)

    def _deliver(self, delivery: _Delivery) -> None:
        output = self.output
        retry = output.retry
        tries = retry.tries if retry is not None else 1
        wait_s = retry.initial_s if retry is not None else 0.0
        attempt = 0
        while True:
            attempt += 1
            age_s = time.monotonic() - delivery.offered_mono
            if output.max_age_s is not None and age_s > output.max_age_s:
                self._give_up(delivery, f"too late: the unit waited {age_s:.1f} s")
                return
            try:
                output.send(delivery.unit, delivery.body, self._stop)
            except TransientError as exc:
                self._note_failure(exc, "unreachable" if isinstance(exc, Unreachable) else "failing")
                if attempt >= tries or self._stop.is_set():
                    self._give_up(delivery, f"{exc} (after {attempt} tries)")
                    return
                if self._stop.wait(wait_s):
                    self._give_up(delivery, f"{exc} (stopped while retrying)")
                    return
                wait_s = min(wait_s * 2, retry.max_s if retry is not None else wait_s)
            except Exception as exc:
                self._note_failure(exc, "failing")
                self._give_up(delivery, str(exc))
                return
            else:
                with self._cond:
                    self.sent += 1
                    if self.failing_since is not None:
                        log.info("output %s works again", output.name)
                    self.failing_since = None
                    self.last_error = None
                    self._failures_in_a_row = 0
                return

    def _note_failure(self, exc: Exception, kind: str) -> None:
        with self._cond:
            if self.failing_since is None:
                self.failing_since = _utc_now_text()
            self.failure_kind = kind
            self.last_error = str(exc) or type(exc).__name__
            self._failures_in_a_row += 1
            n = self._failures_in_a_row
        if n == 1 or n % 100 == 0:  # a dead endpoint must not flood the log
            log.warning("output %s: %s (%d failures in a row)", self.output.name, self.last_error, n)

    def _give_up(self, delivery: _Delivery, why: str) -> None:
        with self._cond:
            self.failed += 1
            n = self.failed
        if n == 1 or n % 100 == 0:
            log.warning(
                "output %s gave up unit %s: %s (%d given up so far)",
                self.output.name, delivery.unit.get("id"), why, n,
            )
