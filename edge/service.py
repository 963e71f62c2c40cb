"""The edge service's entry point: config -> model, store, source, pipeline -> API, until a signal.

`qc edge` calls run_edge(). Everything is built here, once, and handed down (no import-time state).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from edge.app import ModelInfo, Services, create_app
from edge.config import EdgeConfig, load_config
from edge.outputs.dispatcher import OutputDispatcher, StationInfo, build_outputs
from edge.pipeline import Pipeline
from edge.retention import start_retention
from edge.sources import build_source
from edge.store import UnitStore

log = logging.getLogger("edge")

DRAIN_TIMEOUT_S = 60.0


def build_services(config: EdgeConfig, outputs: OutputDispatcher | None = None) -> Services:
    """Load the model (refused models raise qc.card.ModelRefused), open the store, wire the line.

    ``outputs``: where stored units go besides the database (its on_unit is the pipeline's hook).
    """
    from qc.inference import Inferencer

    inferencer = Inferencer(config.model.dir, threads=config.pipeline.inference_threads)
    storage = config.storage
    store = UnitStore(
        storage.resolved_database_url(),
        storage.data_dir,
        busy_timeout_s=storage.sqlite_busy_timeout_s,
        connect_timeout_s=storage.postgres_connect_timeout_s,
        spool_retry_s=storage.spool_retry_s,
    )
    swept = store.sweep_after_crash()
    if swept.total:
        log.warning("startup sweep after an unclean stop: %s", swept)
    pipeline = Pipeline(
        build_source(config.source),
        inferencer,
        store,
        station_id=config.station.id,
        line=config.station.line,
        queue_size=config.pipeline.queue_size,
        writer_threads=config.pipeline.writer_threads,
        px_per_mm=config.station.px_per_mm,
        rules=config.rules,
        expect_size_px=config.source.expect_size_px,
        max_frame_age_s=config.source.max_frame_age_s,
        on_unit=outputs.on_unit if outputs is not None else None,
    )
    thresholds = inferencer.card.thresholds
    model = ModelInfo(
        name=inferencer.name,
        version=inferencer.version,
        dir=str(inferencer.model_dir),
        thresholds={"image": thresholds.image, "pixel": thresholds.pixel},
    )
    return Services(
        config=config, store=store, pipeline=pipeline, model=model, inferencer=inferencer
    )


def run_edge(config_path: Path, overrides: list[str]) -> int:
    """Serve until SIGINT/SIGTERM, then drain the queue and return 0.

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
    assert services.pipeline is not None
    services.pipeline.start()
    log.info(
        "station %s inspecting with %s %s; API on http://%s:%d",
        config.station.id,
        services.model.name if services.model else "?",
        services.model.version if services.model else "?",
        config.api.host,
        config.api.port,
    )
    retention = start_retention(config.storage.retention, services.store)
    try:
        server.run()
    finally:
        if retention is not None:
            retention.stop()
        drained = services.pipeline.stop(timeout_s=DRAIN_TIMEOUT_S)
        snap = services.pipeline.snapshot()
        outputs.close()  # after the pipeline: the units it drained still go out
        services.store.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    log.info(
        "stopped: %d frames read, %d dropped, units %s%s",
        snap["frames_read"],
        snap["frames_dropped"],
        snap["units_by_verdict"],
        "" if drained else f" ({snap['queued']} frames still queued after {DRAIN_TIMEOUT_S:.0f} s)",
    )
    if not server.started:
        log.error("the API could not start on %s:%d", config.api.host, config.api.port)
        return 1
    return 0
