"""The model registry: ``models/<name>/<version>/{model.onnx, model.json}``.

``promote`` writes ``models/<name>/CURRENT`` (the version a station loads by default) only after
the version verifies, and atomically, so a station never reads a half-written pointer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qc.atomic import write_text_atomic
from qc.card import ModelCard, ModelRefused
from qc.contract import CARD_FILE


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    path: Path
    current: bool


def list_models(root: str | Path) -> list[RegisteredModel]:
    root = Path(root)
    found = []
    for card in sorted(root.glob(f"*/*/{CARD_FILE}")):
        version_dir = card.parent
        pointer = version_dir.parent / "CURRENT"
        current = pointer.is_file() and pointer.read_text(encoding="utf-8").strip() == version_dir.name
        found.append(RegisteredModel(version_dir.parent.name, version_dir.name, version_dir, current))
    return found


def verify_model(path: str | Path) -> ModelCard:
    """Everything a station checks before serving: card parses, sha256 matches, graph contract."""
    from qc.inference import Inferencer

    return Inferencer(path, threads=1).card


def promote(root: str | Path, name: str, version: str) -> Path:
    model_dir = Path(root) / name
    version_dir = model_dir / version
    if not version_dir.is_dir():
        raise ModelRefused(f"{version_dir}: no such model version")
    verify_model(version_dir)  # refuse to point stations at a model that would not load
    write_text_atomic(model_dir / "CURRENT", version + "\n")
    return version_dir
