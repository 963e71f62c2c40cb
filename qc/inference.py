"""The torch-free inference engine: an exported model run by onnxruntime on images of any size."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qc.card import ModelCard, ModelRefused, verify_files
from qc.contract import BACKBONE_METADATA_KEY, INPUT_NAME, OUTPUT_NAMES
from qc.imageio import to_rgb_uint8
from qc.padding import fill_padding
from qc.position import ColumnFactors
from qc.postprocess import postprocess, scored_map
from qc.self_similarity import add_unrepeated
from qc.tiling import Blender, TileGrid, min_side_px

log = logging.getLogger("qc.inference")

# Names users write in configs -> onnxruntime execution providers, best first for "auto".
PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def choose_providers(requested: str, available: list[str]) -> list[str]:
    """The provider list for onnxruntime: what was asked for if installed, else CPU with a warning.

    CPU is always last in the list so onnxruntime can place any node the accelerator lacks.
    """
    if requested not in ("auto", *PROVIDERS):
        raise ValueError(f"unknown provider {requested!r}; choose auto, {', '.join(PROVIDERS)}")
    if requested == "auto":
        chosen = [name for name in PROVIDERS.values() if name in available]
    elif PROVIDERS[requested] in available:
        chosen = [PROVIDERS[requested]]
    else:
        log.warning(
            "provider %r is not installed (onnxruntime has %s); falling back to CPU",
            requested, ", ".join(available),
        )
        chosen = []
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


@dataclass(frozen=True)
class InferenceResult:
    heatmap: np.ndarray  # float32 (H, W), defect probability 0..1 at the image's own resolution
    score: float  # image score: the highest tile score
    infer_ms: float  # wall time of tiling + onnxruntime + blending


def to_input_tensor(tiles_rgb: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> the contract's float32 (N, 3, H, W) in 0..1.

    This is the whole client-side preprocessing; mean/std normalisation lives inside the graph.
    """
    return np.ascontiguousarray(tiles_rgb.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)


def resolve_model_dir(path: str | Path) -> Path:
    """A model version dir, or a model dir holding versions (CURRENT file, else highest version)."""
    path = Path(path)
    if (path / "model.json").is_file():
        return path
    current = path / "CURRENT"
    if current.is_file():
        return path / current.read_text(encoding="utf-8").strip()
    versions = sorted((p.parent for p in path.glob("*/model.json")), key=lambda p: _version_key(p.name))
    if not versions:
        raise ModelRefused(f"{path} holds no model (no model.json, nor <version>/model.json)")
    return versions[-1]


def _version_key(name: str) -> tuple:
    # (0, number) sorts before (1, text) so "1.10.0" > "1.9.0" and "v2" never meets an int.
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.replace("-", ".").split("."))


def open_session(onnx_path: Path, *, threads: int, provider: str = "cpu"):
    """An onnxruntime session as every reader of an exported graph makes it (the detector, the
    defect-type head): ``threads`` intra-op threads, quiet logs, the chosen providers. A graph
    onnxruntime cannot load raises ModelRefused naming the file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    providers = choose_providers(provider, ort.get_available_providers())
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelRefused(f"{onnx_path}: onnxruntime cannot load the model: {exc}") from exc


class Inferencer:
    """Loads a verified model once and turns images into heatmaps and scores.

    Refuses (ModelRefused) a model whose file does not match its card's sha256 or whose graph does
    not have the contract's inputs and outputs: nothing loads half a model.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        threads: int = 2,
        batch_size: int = 8,
        provider: str = "cpu",
    ) -> None:
        self.model_dir = resolve_model_dir(model_dir)
        self.card: ModelCard = verify_files(self.model_dir)
        position = self.card.position
        self._position_scale = ColumnFactors.from_record(position)
        self._broad_sigma_px = self.card.heatmap.broad_sigma_px if self.card.heatmap is not None else 0.0
        self.batch_size = max(1, batch_size)
        self._session = open_session(self.model_dir / self.card.onnx_file, threads=threads, provider=provider)
        self.provider = self._session.get_providers()[0]
        self._check_contract()

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def min_side_px(self) -> int:
        """The smallest image side this model's tiles make sense of (qc.tiling.min_side_px)."""
        return min_side_px(self.card.tiling.tile_px)

    def _check_contract(self) -> None:
        inputs = self._session.get_inputs()
        outputs = [o.name for o in self._session.get_outputs()]
        if [i.name for i in inputs] != [INPUT_NAME] or len(inputs[0].shape) != 4:
            raise ModelRefused(f"{self.model_dir}: model input must be one 4-D tensor named {INPUT_NAME!r}")
        if outputs != list(OUTPUT_NAMES):
            raise ModelRefused(f"{self.model_dir}: model outputs {outputs} != contract {list(OUTPUT_NAMES)}")
        graph_backbone = self._session.get_modelmeta().custom_metadata_map.get(BACKBONE_METADATA_KEY)
        card_backbone = self.card.backbone.name if self.card.backbone is not None else None
        if graph_backbone != card_backbone:
            raise ModelRefused(
                f"{self.model_dir}: the graph carries backbone {graph_backbone or 'none'} but its card "
                f"says {card_backbone or 'none'}"
            )
        t = self.card.input.tile_px
        heat, score = self._run(np.zeros((1, 3, t, t), np.float32))
        if heat.shape != (1, 1, t, t) or score.shape != (1,):
            raise ModelRefused(
                f"{self.model_dir}: on a {t}x{t} tile the model gives heatmap {heat.shape} and score "
                f"{score.shape}, its card promises (1, 1, {t}, {t}) and (1,)"
            )

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heat, score = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        return heat, score

    def _infer_batch(self, tiles_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heat, score = self._run(to_input_tensor(tiles_rgb))
        return heat[:, 0], score

    def infer_tiles(self, tiles_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, T, T, 3) uint8 tiles -> heatmaps (N, T, T) and scores (N,), batched per call."""
        heats, scores = [], []
        for start in range(0, len(tiles_rgb), self.batch_size):
            heat, score = self._infer_batch(tiles_rgb[start : start + self.batch_size])
            heats.append(heat)
            scores.append(score)
        return np.concatenate(heats), np.concatenate(scores)

    def _blend(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """The network's tile maps blended into one map of the image (0..1) and its tiles' top score."""
        grid = TileGrid.for_image(
            rgb.shape[0], rgb.shape[1], self.card.tiling.tile_px, self.card.tiling.overlap_px
        )
        blender = Blender(grid)
        score = -np.inf
        source = fill_padding(rgb) if self.card.tiling.fill_padding else rgb
        for boxes, tiles in grid.batches(source, self.batch_size):
            heats, scores = self._infer_batch(tiles)
            blender.add(boxes, heats)
            score = max(score, float(scores.max()))
        blended = blender.result()
        return np.clip(blended, 0.0, 1.0, out=blended), score

    def scored_map(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The map the image score is taken from (padding cleared, column factors applied, not yet
        smoothed for display) and that score: for benches that compare ways of scoring it. The
        network's alone: the unrepeated-structure cue (qc.self_similarity) joins in ``infer``."""
        rgb = to_rgb_uint8(image)
        blended, score = self._blend(rgb)
        return scored_map(rgb, blended, score, self._position_scale)

    def infer(self, image: np.ndarray) -> InferenceResult:
        """Tiles are cut, run and blended a batch at a time: a large image costs its heatmap and
        the post-processing, not a copy of every tile and tile map (qc.tiling)."""
        started = time.perf_counter()
        rgb = to_rgb_uint8(image)
        blended, score = self._blend(rgb)
        heatmap, score = postprocess(rgb, blended, score, self._position_scale, self._broad_sigma_px)
        if self.card.self_similarity is not None:
            # Read at call time like the thresholds, so a recalibrated card takes effect at once.
            heatmap, score = add_unrepeated(
                rgb, heatmap, score, self.card.self_similarity, self.card.thresholds.image
            )
        return InferenceResult(
            heatmap=heatmap,
            score=score,
            infer_ms=(time.perf_counter() - started) * 1000.0,
        )
