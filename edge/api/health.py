"""/healthz: the station's status and, in words, everything that is wrong with it. Station-wide
figures add up the cameras."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from edge.api.storage_health import storage_health
from edge.line.pipeline import Pipeline
from edge.services import Services

if TYPE_CHECKING:
    from edge.line.outputs.dispatcher import OutputDispatcher

RECENT_ERROR_S = 60.0  # an inference error older than this no longer degrades /healthz


def camera_health(pipeline: Pipeline) -> dict[str, Any]:
    """One camera's state, and its problems in words, each naming the camera."""
    snap = pipeline.snapshot()
    problems: list[str] = []
    source_state = snap["source"]
    if snap["source_error"]:
        problems.append(snap["source_error"])
    elif source_state["down_since"] and not source_state["up"] and snap["running"]:
        problems.append(
            f"source down since {source_state['down_since']}, reconnecting, attempt "
            f"{source_state['attempt']}: {source_state['last_error']}"
        )
    elif not snap["running"]:
        problems.append("pipeline is not running: no new units are inspected")
    age = snap["last_error_age_s"]
    if age is not None and age < RECENT_ERROR_S:
        problems.append(
            f"{snap['errors']} unit(s) failed so far, the last {age:.0f} s ago: {snap['last_error']}"
        )
    problems.extend(pipeline.trigger.problems())  # e.g. its MQTT trigger broker is unreachable
    return {
        "id": snap["camera"],
        "problems": [f"camera {snap['camera']}: {p}" for p in problems],
        "running": snap["running"],
        "trigger": snap["trigger"],
        "source": {
            **pipeline.source.describe(),
            **{k: v for k, v in source_state.items() if k != "skipped"},
            "frames_read": snap["frames_read"],
        },
        "units_by_verdict": snap["units_by_verdict"],
        "frames_dropped": snap["frames_dropped"],
        "frames_invalid": snap["frames_invalid"],
        "queued": snap["queued"],
        "last_timings_ms": snap["last_timings"],
    }


def _summed(counts: list[dict[str, int]]) -> dict[str, int]:
    return dict(sum((Counter(c) for c in counts), Counter()))


def health(services: Services, outputs: OutputDispatcher | None = None) -> dict[str, Any]:
    """Status plus, in words, everything that is wrong. Station-wide figures add up the cameras;
    ``cameras`` has each one, and ``source`` is the first camera's (as for a one-camera station)."""
    problems: list[str] = []
    cameras = [camera_health(p) for p in services.pipelines]
    if services.model is None:
        problems.append("no model loaded")
    if not cameras:
        problems.append("no pipeline: the API serves stored units only")
    for camera in cameras:
        problems.extend(camera["problems"])
    for pipeline in services.pipelines:
        storage_problem = pipeline.storage_problem()  # "disk full: <data_dir>, <N> MB free; ..."
        if storage_problem and storage_problem not in problems:
            problems.append(storage_problem)
    database = storage_health(services.store)  # database unreachable, units in the spool
    problems.extend(database.problems)
    if outputs is not None:
        problems.extend(outputs.problems())  # e.g. "mqtt broker 10.0.0.5:1883 unreachable since"
    first = cameras[0] if cameras else {}
    return {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "station": {"id": services.config.station.id, "line": services.config.station.line},
        "model": vars(services.model) if services.model else None,
        "cameras": cameras,
        "source": first.get("source", {}),
        "units": database.units,
        "database": database.status,
        "units_by_verdict": _summed([c["units_by_verdict"] for c in cameras]),
        "frames_dropped": sum(c["frames_dropped"] for c in cameras),
        "frames_invalid": _summed([c["frames_invalid"] for c in cameras]),
        "queued": sum(c["queued"] for c in cameras),
        "last_timings_ms": first.get("last_timings_ms", {}),
        "outputs": outputs.snapshot() if outputs is not None else {},
    }
