"""Build a Pipeline in tests as the station does: from a station config (dotted overrides, as on
the ``qc edge`` command line) and a source, inferencer and store of the test's own."""

from __future__ import annotations

from edge.config import CameraConfig, load_config
from edge.line.pipeline import Pipeline


def make_pipeline(source, inferencer, store, *overrides: str, camera: str = "cam-1", trigger=None,
                  on_unit=None, grading=None) -> Pipeline:
    """``overrides`` set the config (``"station.id=s"``, ``"source.expect_size_px=[96, 128]"``,
    ``"pipeline.queue_size=2"``); ``camera`` names the camera whose source is ``source``."""
    # The test's source stands in for the configured one; its section holds the frame checks.
    config = load_config(None, ["source.type=simulated", *overrides])
    return Pipeline(
        source, inferencer, store,
        station=config.station,
        camera=CameraConfig(id=camera, source=config.source, trigger=config.trigger),
        settings=config.pipeline,
        rules=config.rules,
        trigger=trigger,
        on_unit=on_unit,
        grading=grading,
    )


class ListSource:
    """Hands over prepared frames, as a camera would, then ends. ``restamp``: each frame is handed
    over as if captured just now (a trigger times its units from capture), else as prepared."""

    def __init__(self, frames, *, restamp: bool = False):
        from edge.line.sources import SourceStatus

        self.status = SourceStatus()
        self._frames = frames
        self._restamp = restamp

    def describe(self):
        return {"type": "list"}

    def frames(self, stop):
        import time

        from edge.line.sources import Frame

        self.status.delivering()
        for f in self._frames:
            yield Frame(f.index, f.image, f.captured_at, time.monotonic(), f.truth) if self._restamp else f
        self.status.finished()
