"""Helpers for frame-source tests (folder, video, camera, stream, genicam)."""

from __future__ import annotations

import threading
import time

FAST_RETRY = {"reconnect_initial_s": 0.02, "reconnect_max_s": 0.05}


def run_in_thread(source):
    """Consume a source in a thread; returns (frames list, stop event, thread)."""
    stop, frames = threading.Event(), []

    def consume():
        for f in source.frames(stop):
            frames.append(f)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    return frames, stop, thread


def wait_for(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def status_after_failed_opens(source) -> dict:
    """Run a source that cannot open until it has retried twice, stop it, check it stopped without
    a frame, and return its status snapshot."""
    frames, stop, thread = run_in_thread(source)
    wait_for(lambda: source.status.reconnects >= 2)
    stop.set()
    thread.join(2)
    assert not thread.is_alive() and frames == []
    return source.status.snapshot()
