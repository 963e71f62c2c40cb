"""What a station serves from a model folder: the detector and, where its card names one, the type
head beside it, verified together and swapped together.

The type head lives in its own module (qc.defect_types) and builds on the detector's session
helper, so the detector cannot load it itself without an import circle; this subclass is where
the two meet. A model without a type head still serves: ``type_classifier`` is None and its
regions stay "defect".
"""

from __future__ import annotations

from pathlib import Path

from qc.defect_types import TypeClassifier, load_type_classifier
from qc.inference import Inferencer


class InspectionModel(Inferencer):
    def __init__(self, model_dir: str | Path, *, threads: int = 2, **options) -> None:
        super().__init__(model_dir, threads=threads, **options)
        # A type head that does not match its card refuses the whole model (qc.card.ModelRefused),
        # before a station switches to it. One thread: the head reads a few 64-px crops per failed
        # unit (well under a millisecond); a second pool of onnxruntime threads, which spin for a
        # while after each run, would only compete with the detector's for the same cores.
        self.type_classifier: TypeClassifier | None = load_type_classifier(self.model_dir, self.card, threads=1)
