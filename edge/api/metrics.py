"""/metrics: Prometheus figures read from the pipelines and the outputs at scrape time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from edge.services import Services

if TYPE_CHECKING:
    from edge.line.outputs.dispatcher import OutputDispatcher

INVALID_REASONS = ("empty", "malformed", "wrong_size", "stale", "unreadable")


class PipelineCollector:
    """Prometheus metrics read from the pipelines' snapshots at scrape time, so the counters live
    in one place and the pipeline knows nothing of Prometheus. Every series of a camera's line
    carries its ``camera`` label; the disk's figures are the station's, without one."""

    def __init__(self, services: Services):
        self.services = services

    def collect(self):
        pipelines = self.services.pipelines
        if not pipelines:
            return
        snaps = [p.snapshot() for p in pipelines]
        families: dict[str, Any] = {}

        def family(kind, name: str, doc: str, labels: tuple[str, ...] = ()):
            if name not in families:
                families[name] = kind(name, doc, labels=["camera", *labels])
            return families[name]

        for snap in snaps:
            cam = snap["camera"]
            source = snap["source"]

            def counter(name: str, doc: str, value: float) -> None:
                family(CounterMetricFamily, name, doc).add_metric([cam], value)

            def gauge(name: str, doc: str, value: float) -> None:
                family(GaugeMetricFamily, name, doc).add_metric([cam], value)

            def by_label(name: str, doc: str, label: str, counts: dict[str, int]) -> None:
                f = family(CounterMetricFamily, name, doc, (label,))
                for key, n in sorted(counts.items()):
                    f.add_metric([cam, key], n)

            counter("qc_frames_read", "frames delivered by the source", snap["frames_read"])
            counter("qc_frames_dropped", "frames dropped as inference fell behind", snap["frames_dropped"])
            # Known labels start at zero, so rate() sees the first skip and dashboards the series.
            invalid = {**dict.fromkeys(INVALID_REASONS, 0), **snap["frames_invalid"]}
            by_label("qc_frames_invalid", "frames skipped as unusable", "reason", invalid)
            verdicts = {"pass": 0, "fail": 0, **snap["units_by_verdict"]}
            by_label("qc_units", "units inspected and stored", "verdict", verdicts)
            counter("qc_unit_errors", "units failed in inference or storage", snap["errors"])
            counter("qc_source_reconnects", "tries to reopen a lost source", source["reconnects"])
            gauge("qc_source_up", "1 while frames arrive", int(source["up"]))
            gauge("qc_queue_depth", "frames awaiting inference", snap["queued"])
            counter("qc_trigger_units", "units the camera's trigger made of its frames",
                    snap["trigger"]["units"])
            hist = snap["inference_seconds"]
            cumulative, buckets = 0, []
            for bound, n in zip([*hist["bounds_s"], float("inf")], hist["counts"]):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family(HistogramMetricFamily, "qc_inference_seconds", "model inference time per unit"
                   ).add_metric([cam], buckets, sum_value=hist["sum_s"])
        yield from families.values()
        # The disk is the station's: its figures add up the cameras and carry no camera label.
        storage = [s["storage"] for s in snaps]
        yield CounterMetricFamily(
            "qc_storage_errors", "unit writes the disk refused (each retry counts)",
            value=sum(s["errors"] for s in storage),
        )
        yield GaugeMetricFamily(
            "qc_storage_held_units", "decided units waiting for the disk to take them",
            value=sum(s["held"] for s in storage),
        )
        free_bytes = snaps[0]["storage"]["free_bytes"]
        if free_bytes is not None:
            yield GaugeMetricFamily(
                "qc_disk_free_bytes", "free bytes on the filesystem of the data folder", value=free_bytes
            )


class OutputsCollector:
    """qc_outputs_{sent,failed,dropped}{output=...} and qc_outputs_queued, read at scrape time."""

    def __init__(self, outputs: OutputDispatcher):
        self.outputs = outputs

    def collect(self):
        snap = self.outputs.snapshot()
        docs = {
            "sent": "units delivered by the output",
            "failed": "units the output gave up on (refused, retries spent, too late)",
            "dropped": "units dropped from the output's full queue, or left queued at shutdown",
        }
        for key, doc in docs.items():
            family = CounterMetricFamily(f"qc_outputs_{key}", doc, labels=["output"])
            for name, figures in snap.items():
                family.add_metric([name], figures[key])
            yield family
        queued = GaugeMetricFamily("qc_outputs_queued", "units waiting for the output", labels=["output"])
        for name, figures in snap.items():
            queued.add_metric([name], figures["queued"])
        yield queued
