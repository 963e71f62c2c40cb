"""The loop that teaches a station defect types, end to end, through the commands a QC engineer
runs: units fail on the line as "defect" -> an operator reviews them with a type -> `qc data
export-feedback` -> `qc train-types` -> `qc export` into the model folder -> the station, switched
to that model, names the next such unit itself.

The detector is the tests' tiny dark-spot model (it lights up dark pixels), so the regions are
exactly the shapes drawn; the two operator types are told apart by shape: a round "spot" and a
long thin "streak".
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone

import numpy as np

from edge.line.sources import Frame
from edge.storage.store import UnitStore
from edge.units import Review
from qc.cli import EXIT_OK, main
from qc.inspection_model import InspectionModel
from qc.severity import SeverityTable
from tests.edge.pipeline_helpers import make_pipeline

SIZE = (96, 128)


def frame(index: int, kind: str, rng: np.random.Generator) -> Frame:
    """Light cloth with one dark spot or one dark streak somewhere on it."""
    image = rng.integers(170, 230, (*SIZE, 3), dtype=np.uint8)
    if kind == "spot":
        r = int(rng.integers(6, 10))
        cy, cx = int(rng.integers(20, SIZE[0] - 20)), int(rng.integers(20, SIZE[1] - 20))
        yy, xx = np.ogrid[: SIZE[0], : SIZE[1]]
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 10
    else:
        y, length = int(rng.integers(10, SIZE[0] - 10)), int(rng.integers(50, 90))
        x = int(rng.integers(5, SIZE[1] - length - 5))
        image[y : y + 3, x : x + length] = 10
    return Frame(index, image, datetime.now(timezone.utc), time.monotonic())


def test_reviewed_types_flow_back_and_the_station_names_the_next_such_unit(
    tiny_model_dir, tmp_path, rng, capsys, monkeypatch
):
    data_dir, model = tmp_path / "station", tmp_path / "models" / "dark" / "2.0"
    shutil.copytree(tiny_model_dir, model)
    config = ["station.id=s1", "station.line=l1"]

    store = UnitStore(f"sqlite:///{data_dir / 'qc.db'}", data_dir)
    try:
        line = make_pipeline(None, InspectionModel(model, threads=1), store, *config)
        kinds = ["spot", "streak"] * 10
        units = [line.process(frame(i, kind, rng)) for i, kind in enumerate(kinds)]
        # The model has no type head yet: every failed unit's regions are plain "defect".
        assert all(u.verdict == "fail" for u in units)
        assert {d["type"] for u in units for d in u.defects} == {"defect"}
        for unit, kind in zip(units, kinds):
            store.review(unit.id, Review(by="ana", verdict="fail", defect_type=kind))
    finally:
        store.close()

    feedback, run = tmp_path / "feedback", tmp_path / "types-run"
    database = f"sqlite:///{data_dir / 'qc.db'}"
    assert main(["data", "export-feedback", "--out", str(feedback), "--data-dir", str(data_dir),
                 "--database-url", database]) == EXIT_OK
    assert sorted(p.name for p in (feedback / "train").iterdir()) == ["spot", "streak"]
    assert main(["train-types", "--data", str(feedback), "--out", str(run),
                 "steps=60", "batch_size=16", "width=8", "crop_px=32"]) == EXIT_OK
    assert main(["export", str(run), "--out", str(model)]) == EXIT_OK
    capsys.readouterr()

    store = UnitStore(database, data_dir)
    try:
        # The station switched to the model folder now holding the head (as PUT /api/v1/model does).
        retrained = InspectionModel(model, threads=1)
        assert retrained.type_classifier is not None and retrained.type_classifier.types == ("spot", "streak")
        line = make_pipeline(None, retrained, store, *config)
        fresh = np.random.default_rng(99)
        named = []
        for i, kind in enumerate(["spot", "streak"] * 4):
            unit = line.process(frame(100 + i, kind, fresh))
            named.append((kind, [d["type"] for d in unit.defects]))
        right = sum(types == [kind] for kind, types in named)
        assert right >= 7, named  # 8 new units; the head learnt from 20 reviews
        # And the station graded them: the default table's rule for a type it does not name.
        assert {d["severity"] for d in unit.defects} == {SeverityTable().default.base}
    finally:
        store.close()
