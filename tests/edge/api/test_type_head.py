"""The station serves a model's type head with its detector: uploads and the line get typed,
graded regions, and a head that does not match its card refuses the whole model."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np

from edge.services import ModelInfo
from qc.card import load_card, write_card
from qc.contract import TYPES_FILE
from qc.inspection_model import InspectionModel


def with_head(detector_dir, head_model_dir, out):
    """The tiny dark-spot detector carrying the shipped model's type head (the two are independent
    graphs, so any head can sit beside any detector)."""
    shutil.copytree(detector_dir, out)
    shutil.copy(head_model_dir / TYPES_FILE, out / TYPES_FILE)
    card = load_card(out).model_copy(update={"type_head": load_card(head_model_dir).type_head})
    write_card(card, out)
    return out


def upload(api, image):
    ok, png = cv2.imencode(".png", image[..., ::-1])
    return api.post("/api/v1/inspect", files={"image": ("spot.png", png.tobytes(), "image/png")})


def test_an_uploaded_images_regions_are_typed_by_the_models_head_and_graded(
    make_client, tiny_model_dir, default_model_dir, tmp_path
):
    model = InspectionModel(with_head(tiny_model_dir, default_model_dir, tmp_path / "m" / "1.0"), threads=1)
    api = make_client(inferencer=model)
    image = np.full((128, 160, 3), 200, np.uint8)
    cv2.circle(image, (80, 64), 9, (15, 15, 15), -1)
    res = upload(api, image)
    assert res.status_code == 200, res.text
    (defect,) = res.json()["defects"]
    assert defect["type"] in (*model.type_classifier.types, "defect")
    assert 0.0 < defect["type_confidence"] <= 1.0  # the head ran on the region
    assert defect["severity"] in ("critical", "major", "minor")

    bare = make_client(inferencer=InspectionModel(tiny_model_dir, threads=1))
    (untyped,) = upload(bare, image).json()["defects"]
    assert (untyped["type"], untyped["type_confidence"], untyped["severity"]) == ("defect", None, "major")


def test_a_model_whose_type_head_does_not_match_its_card_is_refused_and_the_old_one_serves(
    make_client, auth, tiny_model_dir, default_model_dir, tmp_path
):
    first = InspectionModel(tiny_model_dir, threads=1)
    api = make_client(inferencer=first, model=ModelInfo(first.name, first.version, str(first.model_dir)))
    broken = with_head(tiny_model_dir, default_model_dir, tmp_path / "dark_spot" / "9.0.0")
    card = json.loads((broken / "model.json").read_text())
    (broken / "model.json").write_text(json.dumps({**card, "version": "9.0.0"}))
    (broken / TYPES_FILE).write_bytes((broken / TYPES_FILE).read_bytes()[:-10])

    res = api.put("/api/v1/model", json={"dir": str(broken)}, headers=auth["admin"])
    assert res.status_code == 422
    assert TYPES_FILE in res.json()["detail"] and "sha256" in res.json()["detail"]
    assert api.get("/api/v1/model").json()["version"] == first.version
