"""The edge service's entry point: config -> model, store, source, pipeline -> API, until a signal.

`qc edge` calls run_edge(). edge.services.build_services builds everything once and hands it down
(no import-time state); this module serves it until a signal and drains the line.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

from edge.api.app import create_app
from edge.api.config import ApiConfig, is_loopback
from edge.config import load_config
from edge.line.outputs.dispatcher import StationInfo, build_outputs
from edge.line.pipeline import Pipeline
from edge.services import build_services
from edge.storage.retention import start_retention

log = logging.getLogger("edge")

# The longest a stop waits for the queues to drain: a write that hangs (not one the disk refuses,
# which the writers give up after Pipeline.STORAGE_STOP_GRACE_S) must not keep the station up.
DRAIN_TIMEOUT_S = 60.0
EXIT_UNITS_NOT_STORED = 3  # the station stopped with decided units it could not store


def log_read_access(api: ApiConfig) -> None:
    """Say at start who may read the station's units, images and reports, warning when anyone on
    the network may (keys are for the routes that change things in any case)."""
    where = f"{api.host}:{api.port}"
    if api.reads_need_key():
        why = ("api.require_keys: true" if api.require_keys is True else
               f"api.host {api.host} is not loopback; api.require_keys: false opens them")
        log.info("reads need a viewer key (%s); make one with `qc keys create NAME`", why)
    elif is_loopback(api.host):
        log.info("reads need no key: the API listens on loopback %s only", where)
    else:
        log.warning(
            "reads are open: anyone who can reach %s reads units, images, reports and /metrics "
            "without a key (api.require_keys: false); remove it to require viewer keys", where,
        )


def run_edge(config_path: Path, overrides: list[str]) -> int:
    """Serve until SIGINT/SIGTERM, then drain the queue and return 0; EXIT_UNITS_NOT_STORED when
    decided units could not be stored (the log says how many), 1 when the API could not start.

    Raises qc.overrides.ConfigError for a bad config and qc.card.ModelRefused for a bad model.
    """
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(config_path, overrides)
    outputs = build_outputs(config.outputs, StationInfo(config.station.id, config.station.line))
    try:
        services = build_services(config, outputs)
    except BaseException:
        outputs.close()
        raise
    app = create_app(services, outputs)
    server = uvicorn.Server(
        uvicorn.Config(app, host=config.api.host, port=config.api.port, log_level="warning")
    )

    stop_requested = threading.Event()

    def request_stop(signum, _frame):
        # uvicorn swaps in its own handler while serving and re-raises the signal after it shuts
        # down; this handler is what it restores, so the re-raise lands here instead of killing
        # the process before the queue is drained.
        stop_requested.set()
        server.should_exit = True

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    assert services.pipelines
    for pipeline in services.pipelines:
        pipeline.start()
    log.info(
        "station %s inspecting from %s with %s %s; API on http://%s:%d",
        config.station.id,
        ", ".join(f"{p.camera} ({p.trigger.mode})" for p in services.pipelines),
        services.model.name if services.model else "?",
        services.model.version if services.model else "?",
        config.api.host,
        config.api.port,
    )
    log_read_access(config.api)
    retention = start_retention(config.storage.retention, services.store)
    try:
        server.run()
    finally:
        if retention is not None:
            retention.stop()
        drained = stop_all(services.pipelines, DRAIN_TIMEOUT_S)
        snaps = [p.snapshot() for p in services.pipelines]
        outputs.close()  # after the pipeline: the units it drained still go out
        services.store.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    not_stored = sum(log_stopped(snap, drained) for snap in snaps)
    if not server.started:
        log.error("the API could not start on %s:%d", config.api.host, config.api.port)
    if not_stored:
        log.error("%d decided unit(s) were NOT stored; exit code %d", not_stored,
                  EXIT_UNITS_NOT_STORED)
        return EXIT_UNITS_NOT_STORED
    return 0 if server.started else 1


def log_stopped(snap: dict, drained: bool) -> int:
    """Log a camera's closing line; returns its decided units that were not stored.

    Those are the units its writer gave up (or failed) and, when the drain timed out, the decided
    units still waiting for it: the process ends with them.
    """
    line = (
        f"stopped: camera {snap['camera']}: {snap['frames_read']} frames read, "
        f"{snap['frames_dropped']} dropped, units {snap['units_by_verdict']}"
    )
    not_stored = snap["units_not_stored"] + snap["storage"]["held"]
    if not_stored:
        error = snap["storage"]["error"]
        line += f"; {not_stored} decided unit(s) NOT stored" + (f" ({error})" if error else "")
    if not drained:
        line += f" ({snap['queued']} frames still queued after {DRAIN_TIMEOUT_S:.0f} s)"
    (log.error if not_stored else log.info)(line)
    return not_stored


def stop_all(pipelines: list[Pipeline], timeout_s: float) -> bool:
    """Stop every camera's capture at once, then let each drain within one shared deadline."""
    for pipeline in pipelines:
        pipeline.request_stop()
    deadline = time.monotonic() + timeout_s
    return all([p.stop(timeout_s=max(0.0, deadline - time.monotonic())) for p in pipelines])
