"""Frame sources: where the line's images come from. Chosen by the config's ``type`` field; each
kind lives in its own module and registers itself in SOURCES."""

from edge.line.sources.base import (
    SOURCES,
    Frame,
    FrameSource,
    Pacer,
    ReconnectingSource,
    SourceDown,
    SourceStatus,
    backoff_s,
    build_source,
    register,
)
from edge.line.sources.camera import CameraSource
from edge.line.sources.folder import FolderSource
from edge.line.sources.genicam import GenicamSource
from edge.line.sources.simulated import SimulatedSource
from edge.line.sources.stream import StreamSource
from edge.line.sources.video import VideoSource

__all__ = [
    "SOURCES",
    "CameraSource",
    "FolderSource",
    "Frame",
    "FrameSource",
    "GenicamSource",
    "Pacer",
    "ReconnectingSource",
    "SimulatedSource",
    "SourceDown",
    "SourceStatus",
    "StreamSource",
    "VideoSource",
    "backoff_s",
    "build_source",
    "register",
]
