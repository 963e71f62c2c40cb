"""An admin switches the station's model; a refused model changes nothing."""

import json
import shutil

from edge.services import ModelInfo
from qc.inference import Inferencer


def test_admin_swaps_the_model_and_a_broken_one_is_refused(make_client, auth, tiny_model_dir, tmp_path):
    first = Inferencer(tiny_model_dir)
    api = make_client(inferencer=first, model=ModelInfo(first.name, first.version, str(first.model_dir)))
    newer = tmp_path / "models" / "dark_spot" / "2.0.0"
    shutil.copytree(tiny_model_dir, newer)
    card = json.loads((newer / "model.json").read_text())
    (newer / "model.json").write_text(json.dumps({**card, "version": "2.0.0"}))
    broken = tmp_path / "models" / "dark_spot" / "3.0.0"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.onnx").write_bytes(b"not a model")

    assert api.put("/api/v1/model", json={"dir": str(newer)}).status_code == 401
    assert api.put("/api/v1/model", json={"dir": str(newer)}, headers=auth["operator"]).status_code == 403
    res = api.put("/api/v1/model", json={"dir": str(newer)}, headers=auth["admin"])
    assert res.status_code == 200 and res.json()["version"] == "2.0.0"
    assert api.get("/api/v1/model").json()["version"] == "2.0.0"

    res = api.put("/api/v1/model", json={"dir": str(broken)}, headers=auth["admin"])
    assert res.status_code == 422
    assert "sha256" in res.json()["detail"] and "still serving dark_spot 2.0.0" in res.json()["detail"]
    assert api.get("/api/v1/model").json()["version"] == "2.0.0"
    assert api.get("/healthz").json()["model"]["version"] == "2.0.0"
