"""What kind of defect a region is: the type head beside the detector, run by onnxruntime.

One crop function (``region_crops``) serves training (training/types/) and the station alike, so
the network sees at the line exactly what it learnt from: a square window around the region, its
colour and a hint of where the region is (the heatmap at the pixel threshold; the ground-truth
mask at training time). A region whose top probability is below the card's ``min_confidence``
keeps the type "defect" with that confidence recorded: a wrong confident label is worse than none.

The crop is scaled to the region, so it cannot tell a yarn missing across the whole piece from a
short broken one, or a shade bar from a stain; ``region_geometry`` gives the head what the crop
loses: the region's extent in the whole image, its aspect and how much of its box it fills.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from qc.card import ModelCard, ModelRefused, TypeHeadRecord, sha256_file
from qc.contract import TYPES_GEOMETRY_NAME, TYPES_INPUT_NAME, TYPES_OUTPUT_NAME
from qc.decision import ONE_CLASS, Defect
from qc.inference import open_session

CONTEXT = 1.5  # window side / the box's longer side: the region plus the cloth around it
MIN_WINDOW_PX = 32  # a 3-px nep still gets enough cloth around it to compare with
CHANNELS = 4  # R, G, B, region hint
NOT_A_DEFECT = "not_a_defect"
"""What a head trained with a detector's view (training/types/station_view.py) learns for that
detector's regions off every labelled defect, its false alarms on good cloth. A region whose top type
it is stays "defect", like an unsure one: the head does not overrule the detector, and never puts a
defect's name on cloth that has none. A reserved name: no data folder may use it."""
GEOMETRY = ("width_share", "height_share", "log_aspect", "log_area_share", "fill")
"""What region_geometry gives per region, in order (a card's type_head.geometry names them)."""


def crop_window(box: tuple[int, int, int, int], height: int, width: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the square window for ``box``: centred on it, shifted to stay inside the
    image where it fits; a window larger than the image is centred on the image (padded)."""
    x, y, w, h = box
    side = max(int(round(CONTEXT * max(w, h))), MIN_WINDOW_PX)

    def place(start_of_box: int, length: int, extent: int) -> int:
        if side > extent:
            return (extent - side) // 2
        start = int(round(start_of_box + length / 2 - side / 2))
        return min(max(start, 0), extent - side)

    return place(x, w, width), place(y, h, height), side


def region_crops(
    image_rgb: np.ndarray,
    heatmap: np.ndarray,
    boxes: list[tuple[int, int, int, int]],
    region_threshold: float,
    crop_px: int,
) -> np.ndarray:
    """(N, 4, crop_px, crop_px) float32: per box, RGB/255 of its window and the region hint
    (heatmap >= region_threshold, 0/1, area-averaged when the window is scaled). Outside the image
    the colour repeats the border pixels and the hint is 0."""
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"image_rgb must be (H, W, 3) uint8, got {image_rgb.shape} {image_rgb.dtype}")
    if heatmap.shape != image_rgb.shape[:2]:
        raise ValueError(f"heatmap {heatmap.shape} does not match the image {image_rgb.shape[:2]}")
    height, width = heatmap.shape
    out = np.empty((len(boxes), CHANNELS, crop_px, crop_px), np.float32)
    for i, box in enumerate(boxes):
        x0, y0, side = crop_window(box, height, width)
        # Slice the window's part inside the image and pad the rest (the colour repeats the border
        # pixels, the hint is 0): a long region's window is large, and indexing it pixel by pixel
        # cost milliseconds.
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
        pad = (iy0 - y0, y0 + side - iy1, ix0 - x0, x0 + side - ix1)  # top, bottom, left, right
        colour = cv2.copyMakeBorder(image_rgb[iy0:iy1, ix0:ix1], *pad, cv2.BORDER_REPLICATE)
        inside_hint = (heatmap[iy0:iy1, ix0:ix1] >= region_threshold).astype(np.float32)
        window_hint = cv2.copyMakeBorder(inside_hint, *pad, cv2.BORDER_CONSTANT, value=0)
        interpolation = cv2.INTER_AREA if side > crop_px else cv2.INTER_LINEAR
        colour = cv2.resize(colour, (crop_px, crop_px), interpolation=interpolation)
        window_hint = cv2.resize(window_hint, (crop_px, crop_px), interpolation=interpolation)
        out[i, :3] = colour.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        out[i, 3] = window_hint
    return out


def box_geometry(box: tuple[int, int, int, int], fill: float, height: int, width: int) -> np.ndarray:
    """The GEOMETRY features of ``box`` in an image of ``height`` x ``width``: its width and height
    as shares of the image's, log(width / height), log of its area's share of the image (scaled to
    about -1..0), and ``fill``, the share of the box the region covers (a blob fills it, a slanted
    line does not)."""
    x, y, w, h = box
    w, h = max(int(w), 1), max(int(h), 1)
    return np.array(
        [w / width, h / height, np.log(w / h), np.log(w * h / (width * height)) / 10.0, fill], np.float32
    )


def region_geometry(
    heatmap: np.ndarray,
    boxes: list[tuple[int, int, int, int]],
    region_threshold: float,
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """(N, len(GEOMETRY)) float32: per box, box_geometry with the fill of the region hint (heatmap
    >= region_threshold) inside the box. ``image_size`` (height, width): the whole image's, where
    ``heatmap`` is a cut of it (training's patches); default the heatmap's own."""
    height, width = image_size or heatmap.shape
    out = np.empty((len(boxes), len(GEOMETRY)), np.float32)
    for i, (x, y, w, h) in enumerate(boxes):
        inside = heatmap[y : y + h, x : x + w]
        fill = float((inside >= region_threshold).mean()) if inside.size else 0.0
        out[i] = box_geometry((x, y, w, h), fill, height, width)
    return out


class TypeClassifier:
    """A verified type head: crops in, one type (or "defect") and its probability per region out."""

    def __init__(self, session, head: TypeHeadRecord, source: Path) -> None:
        self._session = session
        self.head = head
        self.types: tuple[str, ...] = tuple(head.types)
        self.crop_px = head.crop_px
        self.min_confidence = head.min_confidence
        self.geometry: tuple[str, ...] = tuple(head.geometry)
        self._check_contract(source)

    def _check_contract(self, source: Path) -> None:
        unknown = [name for name in self.geometry if name not in GEOMETRY]
        if unknown:
            raise ModelRefused(f"{source}: its card names geometry features this station does not compute: {unknown}")
        expected = [TYPES_INPUT_NAME] + ([TYPES_GEOMETRY_NAME] if self.geometry else [])
        inputs = self._session.get_inputs()
        outputs = [o.name for o in self._session.get_outputs()]
        if [i.name for i in inputs] != expected or outputs != [TYPES_OUTPUT_NAME]:
            raise ModelRefused(
                f"{source}: a type head whose card names {len(self.geometry)} geometry features takes "
                f"{expected} and gives {TYPES_OUTPUT_NAME!r}; this graph takes {[i.name for i in inputs]} "
                f"and gives {outputs}"
            )
        probabilities = self.probabilities(
            np.zeros((1, CHANNELS, self.crop_px, self.crop_px), np.float32), np.zeros((1, len(GEOMETRY)), np.float32)
        )
        if probabilities.shape != (1, len(self.types)):
            raise ModelRefused(
                f"{source}: on one crop the graph gives {probabilities.shape}, its card names "
                f"{len(self.types)} types"
            )

    def probabilities(self, crops: np.ndarray, geometry: np.ndarray) -> np.ndarray:
        """(N, 4, crop, crop) crops and (N, len(GEOMETRY)) region_geometry rows, float32 -> (N,
        len(types)) probabilities. A head reads the geometry features its card names."""
        feeds = {TYPES_INPUT_NAME: crops}
        if self.geometry:
            columns = [GEOMETRY.index(name) for name in self.geometry]
            feeds[TYPES_GEOMETRY_NAME] = np.ascontiguousarray(geometry[:, columns])
        (probabilities,) = self._session.run([TYPES_OUTPUT_NAME], feeds)
        return probabilities

    def label(self, probabilities: np.ndarray) -> list[tuple[str, float]]:
        """(type, confidence) per row: the top type, or "defect" when it is not confident enough or
        the top type is NOT_A_DEFECT."""
        best = probabilities.argmax(axis=1)
        return [
            (self.types[k] if float(p[k]) >= self.min_confidence and self.types[k] != NOT_A_DEFECT else ONE_CLASS,
             float(p[k]))
            for k, p in zip(best, probabilities)
        ]

    def region_probabilities(
        self, image_rgb: np.ndarray, heatmap: np.ndarray, boxes: list[tuple[int, int, int, int]], pixel_threshold: float
    ) -> np.ndarray:
        """(N, len(types)) probabilities of the regions at ``boxes``: their crops and geometry cut
        from the image and heatmap as the head learnt them (the hint: heatmap >= pixel_threshold)."""
        crops = region_crops(image_rgb, heatmap, boxes, pixel_threshold, self.crop_px)
        return self.probabilities(crops, region_geometry(heatmap, boxes, pixel_threshold))

    def classify(
        self, image_rgb: np.ndarray, heatmap: np.ndarray, defects: list[Defect], pixel_threshold: float
    ) -> list[Defect]:
        """Copies of ``defects`` with ``type`` and ``type_confidence`` set; the hint is the heatmap
        at the pixel threshold the regions were found with."""
        if not defects:
            return []
        probabilities = self.region_probabilities(image_rgb, heatmap, [d.box for d in defects], pixel_threshold)
        return [
            defect.model_copy(update={"type": kind, "type_confidence": confidence})
            for defect, (kind, confidence) in zip(defects, self.label(probabilities))
        ]


def load_type_classifier(model_dir: str | Path, card: ModelCard, *, threads: int = 1) -> TypeClassifier | None:
    """The type head named by ``card``, verified like the detector; None when the card has none."""
    head = card.type_head
    if head is None:
        return None
    path = Path(model_dir) / head.onnx_file
    if not path.is_file():
        raise ModelRefused(f"type head {path} is missing")
    actual = sha256_file(path)
    if actual != head.onnx_sha256:
        raise ModelRefused(f"{path} sha256 {actual[:12]}… does not match its card ({head.onnx_sha256[:12]}…)")
    return TypeClassifier(open_session(path, threads=threads), head, path)
