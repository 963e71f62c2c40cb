"""Unit image files under data_dir/units/YYYY-MM-DD/<id>/, written atomically.

Each file goes to a temp name, is fsynced, then renamed: a reader (or a row that points at it)
never sees half a JPEG, even after a power cut.

At line speed a unit writes two files: the original (JPEG) and its heatmap as 8-bit grey values
(``heatmap-values.png``, value = round(probability * 255), the 256 levels the colour map has).
The pictures people look at, the colour heatmap (``heatmap.png``) and the overlay (``overlay.png``),
are rendered from those two on first request (edge.reports.pictures) and kept next to them here
(:func:`store_render`).
Rendering and encoding them took ~45 ms of CPU per unit on the station's two cores, which also run
inference; most units are never looked at. The row stores the paths of the two renders, so the
URLs and the record stay what they were; units stored with eager renders (older units, callers that
pass ``heatmap_rgb``/``overlay_rgb``) are served as they are.
"""

from __future__ import annotations

import errno
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from qc.atomic import fsync_dir, write_bytes_atomic
from qc.imageio import read_image
from qc.render import grey_to_heatmap, heatmap_to_grey, rgb_to_heatmap

ORIGINAL_NAME = "image.jpg"
HEATMAP_VALUES_NAME = "heatmap-values.png"  # grey, written with the unit: the source of the renders
HEATMAP_NAME = "heatmap.png"  # colour map, rendered on first request
OVERLAY_NAME = "overlay.png"  # image + colour map + outline, rendered on first request
RENDER_TMP_DIR = "units/.render-tmp"  # temp files of renders, swept at start in one place
JPEG_QUALITY = 92  # libjpeg-turbo: ~1 ms for 640x480 at any quality; kept high for reviews
# PNG level 1, RLE strategy, the "up" filter only: OpenCV's default tries every filter on every
# row. Measured on 640x480 (encoding shares the two cores with inference): the grey heatmap in
# 0.6 ms instead of 5.8 (1-4 KB), the colour heatmap in 2 ms instead of 5.7, an overlay in 10 ms
# instead of 22 at the same size within 2 %.
PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # newer OpenCV; older ones keep their default filters
    PNG_FAST += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class UnsafePath(ValueError):
    """A stored path that would lead outside the data directory."""


class UnitFilesNotWritten(OSError):
    """The disk refused a unit's files (full, quota, read-only, I/O error); nothing was left behind.

    Keeps the errno of the cause, so callers can tell a full disk from other disk trouble.
    """

    def __init__(self, data_dir: Path, cause: OSError):
        super().__init__(
            cause.errno, f"cannot write unit files under {data_dir}: {cause.strerror or cause}"
        )
        self.data_dir = Path(data_dir)
        self.cause = cause

    @property
    def disk_full(self) -> bool:
        return self.errno in DISK_FULL_ERRNOS


def free_bytes(path: Path) -> int | None:
    """Bytes free to this process on the filesystem holding ``path`` (None if it cannot be read)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


class StorageStatus:
    """What the writer last met on the disk: health and metrics read it, the writer updates it.

    Thread-safe. ``failed`` is called for each refused write of a unit that is then held and
    retried, ``recovered`` when a write succeeds again.
    """

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self._lock = threading.Lock()
        self.errors = 0  # refused writes, retries included (qc_storage_errors)
        self._error: OSError | None = None
        self._since: datetime | None = None

    def failed(self, exc: OSError) -> bool:
        """Record a refused write; True when this starts a spell of trouble (log it once)."""
        with self._lock:
            self.errors += 1
            first = self._error is None
            self._error = exc
            if first:
                self._since = datetime.now(timezone.utc)
            return first

    def recovered(self) -> datetime | None:
        """The write went through: clear the trouble; returns when it began (None if there was none)."""
        with self._lock:
            since, self._error, self._since = self._since, None, None
            return since

    def snapshot(self) -> dict:
        with self._lock:
            error, since, errors = self._error, self._since, self.errors
        return {
            "data_dir": str(self.data_dir),
            "errors": errors,
            "failing": error is not None,
            "disk_full": error is not None and error.errno in DISK_FULL_ERRNOS,
            "error": None if error is None else str(getattr(error, "cause", error)),
            "failing_since": None if since is None else since.isoformat(),
            "free_bytes": free_bytes(self.data_dir),
        }

    def problem(self, held_units: int) -> str | None:
        """The trouble in words for /healthz, or None."""
        snap = self.snapshot()
        if not snap["failing"]:
            return None
        free = snap["free_bytes"]
        free_mb = "unknown" if free is None else f"{free / 1e6:.0f}"
        held = f"{held_units} unit(s) waiting since {snap['failing_since']}"
        if snap["disk_full"]:
            return f"disk full: {snap['data_dir']}, {free_mb} MB free; units are held and retried ({held})"
        return (
            f"cannot write unit files under {snap['data_dir']} ({snap['error']}), {free_mb} MB free; "
            f"units are held and retried ({held})"
        )


@dataclass(frozen=True)
class UnitFiles:
    """Paths relative to data_dir, as stored in the unit row (so data_dir can move)."""

    original: str
    heatmap: str
    overlay: str

    def all(self) -> tuple[str, str, str]:
        return (self.original, self.heatmap, self.overlay)

    @property
    def heatmap_values(self) -> str:
        return f"{self.original.rsplit('/', 1)[0]}/{HEATMAP_VALUES_NAME}"


def encode_image(image: np.ndarray, suffix: str) -> bytes:
    """RGB or grey uint8 -> JPEG / PNG bytes with the station's fast settings."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix == ".jpg" else PNG_FAST
    ok, buf = cv2.imencode(suffix, image, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {suffix}")
    return buf.tobytes()


def write_unit_file(path: Path, data: bytes) -> None:
    """Every file of a unit reaches the disk through here (temp file, fsync, rename).

    A named seam: tests/edge/test_disk_full.py replaces it to simulate ENOSPC where no small
    filesystem can be mounted; the real-disk test there mounts one where it can.
    """
    write_bytes_atomic(path, data)


def unit_folder(captured_at: datetime, unit_id: str) -> str:
    return f"units/{captured_at:%Y-%m-%d}/{unit_id}"


def write_unit_files(
    data_dir: Path,
    unit_id: str,
    captured_at: datetime,
    *,
    original_rgb: np.ndarray,
    heatmap: np.ndarray | None = None,
    heatmap_rgb: np.ndarray | None = None,
    overlay_rgb: np.ndarray | None = None,
) -> UnitFiles:
    """Encode and write a unit's files; on any failure nothing is left behind.

    ``heatmap`` (float 0..1 or its uint8 grey form, (H, W)) is stored as grey values and the colour
    heatmap and overlay are rendered on demand. Callers that already hold the renders may pass
    ``heatmap_rgb`` and ``overlay_rgb`` instead (or as well): they are written as they are.
    Disk errors are raised as :class:`UnitFilesNotWritten`.
    """
    if heatmap is None and (heatmap_rgb is None or overlay_rgb is None):
        raise ValueError("a unit needs its heatmap values, or both its heatmap and overlay renders")
    if heatmap is not None and heatmap.shape[:2] != original_rgb.shape[:2]:
        raise ValueError(f"heatmap {heatmap.shape} does not match image {original_rgb.shape[:2]}")
    folder = unit_folder(captured_at, unit_id)
    files = UnitFiles(
        original=f"{folder}/{ORIGINAL_NAME}",
        heatmap=f"{folder}/{HEATMAP_NAME}",
        overlay=f"{folder}/{OVERLAY_NAME}",
    )
    # Encode first: a bad array fails before anything touches the disk.
    payloads = [(files.original, encode_image(original_rgb, ".jpg"))]
    if heatmap is not None:
        payloads.append((files.heatmap_values, encode_image(heatmap_to_grey(heatmap), ".png")))
    if heatmap_rgb is not None:
        payloads.append((files.heatmap, encode_image(heatmap_rgb, ".png")))
    if overlay_rgb is not None:
        payloads.append((files.overlay, encode_image(overlay_rgb, ".png")))
    target_dir = data_dir / folder
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        for rel, data in payloads:
            write_unit_file(data_dir / rel, data)
        fsync_dir(target_dir)  # the renames are durable only once the folder entry is on disk
    except BaseException as exc:
        remove_unit_files(data_dir, files)
        if isinstance(exc, OSError) and not isinstance(exc, UnitFilesNotWritten):
            raise UnitFilesNotWritten(data_dir, exc) from exc
        raise
    return files


def remove_unit_files(data_dir: Path, files: UnitFiles) -> None:
    folder = resolve_inside(data_dir, files.original).parent
    for name in UNIT_FILE_NAMES:
        (folder / name).unlink(missing_ok=True)
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


UNIT_FILE_NAMES = (ORIGINAL_NAME, HEATMAP_VALUES_NAME, HEATMAP_NAME, OVERLAY_NAME)
UNIT_ID = re.compile(r"[0-9a-f]{32}")  # edge.storage.store.new_unit_id
DAY_FOLDER = re.compile(r"\d{4}-\d{2}-\d{2}")  # unit_folder


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
    days = sorted(d for d in root.iterdir() if d.is_dir() and DAY_FOLDER.fullmatch(d.name))
    days = days[max(0, len(days) - recent_days) :]
    orphans = temps = 0
    # Renders of any day, however old, keep their temp files in one folder: one look finds them.
    render_tmp = Path(data_dir) / RENDER_TMP_DIR
    if render_tmp.is_dir():
        for tmp in render_tmp.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            temps += 1
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


# -- what the renders are made from, and where they are kept -----------------------------------


def stored_heatmap_grey(folder: Path) -> np.ndarray | None:
    """The heatmap's 8-bit grey values written with the unit in ``folder``; None when absent
    (a unit stored with renders only, or its folder gone)."""
    return cv2.imread(str(Path(folder) / HEATMAP_VALUES_NAME), cv2.IMREAD_GRAYSCALE)


def stored_original_rgb(folder: Path) -> np.ndarray | None:
    """The unit's original image in ``folder`` as RGB; None when it is not on disk."""
    bgr = cv2.imread(str(Path(folder) / ORIGINAL_NAME), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def heatmap_values(heatmap_path: Path) -> np.ndarray | None:
    """The unit's heatmap as float values 0..1, from the grey values stored beside
    ``heatmap_path`` (its ``heatmap.png``), or from that colour heatmap where a unit was stored
    with renders only; None when neither is on disk. Renders nothing."""
    grey = stored_heatmap_grey(heatmap_path.parent)
    if grey is not None:
        return grey_to_heatmap(grey)
    if heatmap_path.is_file():
        return rgb_to_heatmap(read_image(heatmap_path))
    return None


def store_render(data_dir: Path, path: Path, data: bytes) -> bool:
    """Keep a picture rendered from a unit's files at ``path``, in its folder: atomically, so
    concurrent first requests both leave a whole file, with the temp file in RENDER_TMP_DIR
    (same filesystem), so a kill mid-write leaves debris in one known place, not in a unit folder
    of months ago. False when the unit's folder went meanwhile (retention)."""
    tmp_dir = Path(data_dir) / RENDER_TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    try:
        write_bytes_atomic(path, data, tmp_dir=tmp_dir)
    except FileNotFoundError:
        return False
    return True
