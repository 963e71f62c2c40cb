"""Replay a folder of image files, sorted by name, at a set rate.

A corrupt file is skipped and counted; a folder that vanishes (unmounted share, renamed away) or
holds no readable image is a lost source, reopened with backoff, and the replay resumes after the
last file delivered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.line.sources.base import ReconnectingSource, SourceDown, register
from edge.line.sources.config import FolderSourceConfig
from qc.imageio import IMAGE_SUFFIXES, ImageReadError, read_image


@register("folder")
class FolderSource(ReconnectingSource):
    def __init__(self, config: FolderSourceConfig):
        super().__init__(config)
        self._last_name: str | None = None  # resume point across reconnects

    def _list(self) -> list[Path]:
        folder = self.config.path
        try:
            paths = sorted(
                p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        except OSError as exc:
            reason = exc.strerror or exc
            raise SourceDown(f"image folder {folder} cannot be read: {reason}") from exc
        if not paths:
            raise SourceDown(f"image folder {folder} holds no image files")
        return paths

    def session(self, stop: threading.Event) -> Iterator[np.ndarray]:
        folder = self.config.path
        while True:
            tried = delivered = 0
            for path in self._list():
                if self._last_name is not None and path.name <= self._last_name:
                    continue
                if stop.is_set():
                    return
                tried += 1
                try:
                    image = read_image(path)
                except ImageReadError as exc:
                    if not folder.is_dir():
                        raise SourceDown(f"image folder {folder} is gone") from exc
                    self.status.skip("unreadable", str(exc))
                    self._last_name = path.name
                    continue
                self._last_name = path.name
                delivered += 1
                yield image
            self._last_name = None
            if not self.config.loop:
                return
            if tried and not delivered:  # a folder of corrupt files must not spin a core
                raise SourceDown(f"image folder {folder} holds no readable image")
