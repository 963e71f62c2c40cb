"""A unit's pictures for people: its image as stored, and the colour heatmap and the overlay
rendered from what storage keeps (the image and the heatmap's grey values) on first request.

Storage stores and finds files (edge.storage.files); rendering for display is done here, for the
API's picture routes and the lot report's thumbnails alike. A picture, once rendered, is kept
beside the unit's files, so later requests are served from disk (the pixels never change).
"""

from __future__ import annotations

from pathlib import Path

from edge.storage.files import (
    HEATMAP_NAME,
    OVERLAY_NAME,
    encode_image,
    store_render,
    stored_heatmap_grey,
    stored_original_rgb,
)
from edge.storage.store import UnitReader
from qc.render import grey_to_heatmap, heatmap_to_rgb, overlay


def unit_picture(units: UnitReader, unit_id: str, kind: str) -> Path | None:
    """The unit's ``image`` / ``heatmap`` / ``overlay`` file, rendered first where it never was;
    None for an unknown unit or a file that is missing and cannot be rendered.

    Raises edge.storage.files.UnsafePath when the stored path would leave data_dir.
    """
    found = units.stored_file(unit_id, kind)
    if found is None:
        return None
    path, pixel_threshold = found
    return ensure_rendered(units.data_dir, path, pixel_threshold=pixel_threshold)


def ensure_rendered(data_dir: Path, path: Path, *, pixel_threshold: float | None) -> Path | None:
    """``path`` itself when it is on disk; when it is a unit's ``heatmap.png`` or ``overlay.png``
    that was never rendered, render it now from the unit's image and heatmap values, have storage
    keep it beside them and return it.

    None when the file is missing and cannot be rendered (its sources are gone).
    ``pixel_threshold`` is the threshold the unit's verdict used: the overlay outlines it.
    """
    if path.is_file():
        return path
    if path.name not in (HEATMAP_NAME, OVERLAY_NAME):
        return None
    folder = path.parent
    grey = stored_heatmap_grey(folder)
    if grey is None:
        return None
    if path.name == HEATMAP_NAME:
        picture = heatmap_to_rgb(grey)
    else:
        rgb = stored_original_rgb(folder)
        if rgb is None or rgb.shape[:2] != grey.shape:
            return None
        picture = overlay(rgb, grey_to_heatmap(grey), threshold=pixel_threshold)
    if not store_render(data_dir, path, encode_image(picture, ".png")):
        return None  # the unit's folder went (retention) while we rendered
    return path
