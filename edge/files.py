"""Unit image files under data_dir/units/YYYY-MM-DD/<id>/, written atomically.

Each file goes to a temp name in its own folder, is fsynced, then renamed: a reader (or a row that
points at it) never sees half a JPEG, even after a power cut.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from qc.imageio import write_bytes_atomic

ORIGINAL_NAME = "image.jpg"
HEATMAP_NAME = "heatmap.png"
OVERLAY_NAME = "overlay.png"
JPEG_QUALITY = 92


class UnsafePath(ValueError):
    """A stored path that would lead outside the data directory."""


@dataclass(frozen=True)
class UnitFiles:
    """Paths relative to data_dir, as stored in the unit row (so data_dir can move)."""

    original: str
    heatmap: str
    overlay: str

    def all(self) -> tuple[str, str, str]:
        return (self.original, self.heatmap, self.overlay)


def encode_image(rgb: np.ndarray, suffix: str) -> bytes:
    if rgb.ndim == 3:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    # PNG level 1: a third of the default's encode time for a few percent more bytes, and encoding
    # runs on the same two cores as inference.
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(suffix, rgb, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {suffix}")
    return buf.tobytes()


def _fsync_dir(path: Path) -> None:
    # The renames are durable only once the directory entry is on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unit_folder(captured_at: datetime, unit_id: str) -> str:
    return f"units/{captured_at:%Y-%m-%d}/{unit_id}"


def write_unit_files(
    data_dir: Path,
    unit_id: str,
    captured_at: datetime,
    *,
    original_rgb: np.ndarray,
    heatmap_rgb: np.ndarray,
    overlay_rgb: np.ndarray,
) -> UnitFiles:
    """Encode and write the three images of a unit; on any failure nothing is left behind."""
    folder = unit_folder(captured_at, unit_id)
    files = UnitFiles(
        original=f"{folder}/{ORIGINAL_NAME}",
        heatmap=f"{folder}/{HEATMAP_NAME}",
        overlay=f"{folder}/{OVERLAY_NAME}",
    )
    # Encode first: a bad array fails before anything touches the disk.
    payloads = [
        (files.original, encode_image(original_rgb, ".jpg")),
        (files.heatmap, encode_image(heatmap_rgb, ".png")),
        (files.overlay, encode_image(overlay_rgb, ".png")),
    ]
    target_dir = data_dir / folder
    target_dir.mkdir(parents=True, exist_ok=True)
    try:
        for rel, data in payloads:
            write_bytes_atomic(data_dir / rel, data)
        _fsync_dir(target_dir)
    except BaseException:
        remove_unit_files(data_dir, files)
        raise
    return files


def remove_unit_files(data_dir: Path, files: UnitFiles) -> None:
    folder = None
    for rel in files.all():
        path = resolve_inside(data_dir, rel)
        path.unlink(missing_ok=True)
        folder = path.parent
    if folder is not None:
        try:
            folder.rmdir()  # only when empty: never delete something we did not write
        except OSError:
            pass


def resolve_inside(data_dir: Path, rel: str) -> Path:
    """Absolute path of a stored relative path, refused if it leaves data_dir (``..``, symlinks)."""
    root = Path(data_dir).resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or path == root:
        raise UnsafePath(f"stored path {rel!r} lies outside the data directory {root}")
    return path


UNIT_FILE_NAMES = (ORIGINAL_NAME, HEATMAP_NAME, OVERLAY_NAME)
UNIT_ID = re.compile(r"[0-9a-f]{32}")  # edge.store.new_unit_id


@dataclass(frozen=True)
class SweepReport:
    orphan_units: int = 0  # unit folders without a row: written, then the process died
    temp_files: int = 0  # half-written temp files of an interrupted atomic write

    @property
    def total(self) -> int:
        return self.orphan_units + self.temp_files


def sweep_unit_folders(
    data_dir: Path, known_ids: Callable[[list[str]], set[str]], *, recent_days: int = 2
) -> SweepReport:
    """Remove what a crash between file write and row commit leaves in the newest day folders.

    Files are written before the row, so after a kill a unit folder may have no row: its files are
    removed. Only names this module writes are deleted, and a folder only when it is then empty.
    Only the ``recent_days`` newest day folders are looked at: a crash leaves debris only where
    units were being written, and a station's startup must not walk months of images.
    """
    root = Path(data_dir) / "units"
    if not root.is_dir():
        return SweepReport()
    days = sorted(d for d in root.iterdir() if d.is_dir())
    days = days[max(0, len(days) - recent_days) :]
    orphans = temps = 0
    for day in days:
        folders = [f for f in day.iterdir() if f.is_dir() and UNIT_ID.fullmatch(f.name)]
        known = known_ids([f.name for f in folders])
        for folder in folders:
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                temps += 1
            if folder.name in known:
                continue
            for name in UNIT_FILE_NAMES:
                (folder / name).unlink(missing_ok=True)
            try:
                folder.rmdir()
            except OSError:
                pass  # something we did not write lives there; leave it
            orphans += 1
    return SweepReport(orphan_units=orphans, temp_files=temps)
