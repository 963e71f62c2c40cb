from __future__ import annotations

import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch

from qc.card import verify_files
from qc.contract import INPUT_NAME, OUTPUT_NAMES
from training.commands import TrainingError, run_export
from training.export import load_run, whole_cell_px

from .conftest import striped_fabric


def test_export_writes_a_verified_card(tiny_export, tiny_run):
    card = verify_files(tiny_export)
    assert (card.name, card.version) == ("tiny-fabric", "0.0.1")
    assert card.opset == 18 and card.input.tile_px == 64 and card.tiling.overlap_px == 16
    assert card.defect_classes == [] and card.metrics == {} and card.quantization is None
    assert card.training.command == "qc train (tests)" and card.export_command == "qc export (tests)"
    assert card.parity.verdicts_identical and card.parity.n_images == 9
    assert card.parity.max_abs_diff_heatmap <= 1e-4 and card.parity.max_abs_diff_score <= 1e-4
    assert card.thresholds.pixel >= 0.5
    assert (tiny_export / "model.onnx").stat().st_size < 10e6


def test_onnxruntime_matches_torch_on_fresh_inputs(tiny_export, tiny_run):
    net = load_run(tiny_run).net
    session = ort.InferenceSession(str(tiny_export / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    rng = np.random.default_rng(0)
    for shape in [(2, 3, 64, 64), (1, 3, 48, 112)]:
        x = rng.random(shape, dtype=np.float32)
        heat, score = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
        with torch.no_grad():
            expected = net(torch.from_numpy(x))
        assert heat.shape == (shape[0], 1, *shape[2:]) and score.shape == (shape[0],)
        assert np.abs(heat - expected.heatmap.numpy()).max() <= 1e-4
        assert np.abs(score - expected.score.numpy()).max() <= 1e-4


def test_the_graph_runs_instance_norms_without_the_group_norm_reshapes(tmp_path):
    import onnx

    from training.config import NetConfig
    from training.export import export_onnx, with_instance_norms
    from training.net import DefectUNet

    net = DefectUNet(NetConfig(norm="instance", base_channels=4, channel_multipliers=[1, 2, 3])).eval()
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms, "whole-tile norms are GroupNorm with one channel per group"
    for norm in norms:  # trained scale and shift, so a copy that dropped them would show
        torch.nn.init.normal_(norm.weight, 1.0, 0.3)
        torch.nn.init.normal_(norm.bias, 0.0, 0.3)
    swapped = with_instance_norms(net)
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in swapped.modules())
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in swapped.modules()) == len(norms)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in net.modules()), "the trained net is untouched"
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        assert torch.allclose(swapped(x).heatmap, net(x).heatmap, atol=1e-5)
    export_onnx(net, tmp_path / "model.onnx", tile_px=64, opset=18)
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    instance_norms = [node for node in graph.node if node.op_type == "InstanceNormalization"]
    assert len(instance_norms) == len(norms)
    assert all(producers.get(node.input[0]) != "Reshape" for node in instance_norms)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    heat, _ = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x.numpy()})
    assert np.abs(heat - net(x).heatmap.detach().numpy()).max() <= 1e-4


def test_an_export_with_test_time_flips_averages_the_mirror_image_in_the_graph(tmp_path, tiny_run):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    checkpoint["config"]["net"]["test_time_flips"] = "vertical"
    torch.save(checkpoint, run / "checkpoint.pt")
    model = run_export(run, tmp_path / "m" / "1", name=None, version=None, command="x")  # parity held
    net = load_run(run).net
    assert net.test_time_flips == "vertical"
    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((2, 3, 64, 96), dtype=np.float32)
    heat, _ = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
    with torch.no_grad():
        flipped = net(torch.from_numpy(x)).heatmap.numpy()
        net.test_time_flips = "none"
        single_pass = net(torch.from_numpy(x)).heatmap.numpy()
    assert np.abs(heat - flipped).max() <= 1e-4
    assert np.abs(heat - single_pass).max() > 1e-3


def test_a_run_from_before_test_time_flips_stays_single_pass(tmp_path, tiny_run):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    del checkpoint["config"]["net"]["test_time_flips"]  # as written before the setting existed
    torch.save(checkpoint, run / "checkpoint.pt")
    assert load_run(run).net.test_time_flips == "none"


def test_the_card_records_the_broad_smoothing_its_pixel_threshold_was_calibrated_on(tiny_export, tiny_run):
    assert verify_files(tiny_export).heatmap.broad_sigma_px == load_run(tiny_run).config.export.broad_sigma_px == 16


def test_a_run_from_before_the_broad_smoothing_exports_without_it(tmp_path, tiny_run):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    del checkpoint["config"]["export"]["broad_sigma_px"]  # as written before the setting existed
    torch.save(checkpoint, run / "checkpoint.pt")
    assert load_run(run).config.export.broad_sigma_px == 0
    model = run_export(run, tmp_path / "model", name="old", version="0.0.1", command="qc export (tests)")
    assert verify_files(model).heatmap is None


def test_the_card_carries_the_self_similarity_threshold_fitted_on_every_good_image(tiny_export, tiny_dataset):
    from qc.imageio import read_image
    from qc.self_similarity import image_score

    cue = verify_files(tiny_export).self_similarity
    good = sorted((tiny_dataset / "train" / "good").iterdir())
    scores = [image_score(read_image(p), cue) for p in good]  # trained on and held back alike
    assert cue.threshold == pytest.approx(1.5 * max(scores), rel=1e-5)
    assert cue.method == f"good-max x1.5 over {len(good)} good images"
    assert cue.data.startswith(f"{len(good) - 2} good images trained on from ")  # and the 2 held back
    assert "2 good images held back" in cue.data


def test_a_run_from_before_the_self_similarity_cue_exports_without_it(tmp_path, tiny_run):
    import json

    run = shutil.copytree(tiny_run, tmp_path / "run")
    record = json.loads((run / "run.json").read_text())
    del record["calibration"]["self_similarity"]  # as written before the cue existed
    (run / "run.json").write_text(json.dumps(record))
    model = run_export(run, tmp_path / "model", name="old", version="0.0.1", command="qc export (tests)")
    assert verify_files(model).self_similarity is None


def test_the_card_records_the_sides_its_graph_of_whole_cells_takes(tiny_export, tiny_run):
    net = load_run(tiny_run).net
    assert net_has_local_norms(net), "the default norms are local: their cells make the multiple"
    card = verify_files(tiny_export)
    assert card.input.size_multiple_px == whole_cell_px(net) == 16  # windows of 128 px, cells of 16
    session = ort.InferenceSession(str(tiny_export / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).random((1, 3, 48, 80), dtype=np.float32)  # not square, but whole cells
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).heatmap.numpy()
    assert np.abs(session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})[0] - expected).max() <= 1e-4


def test_an_export_without_whole_cells_takes_any_size(tmp_path, tiny_run):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    checkpoint["config"]["export"]["whole_cells"] = False
    torch.save(checkpoint, run / "checkpoint.pt")
    model = run_export(run, tmp_path / "m" / "1", name=None, version=None, command="x")  # parity held
    assert verify_files(model).input.size_multiple_px == 1
    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    heat, _ = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.random.rand(1, 3, 43, 75).astype(np.float32)})
    assert heat.shape == (1, 1, 43, 75)


def net_has_local_norms(net) -> bool:
    from training.local_norm import LocalNorm

    return any(isinstance(m, LocalNorm) for m in net.modules())


def test_the_station_inferencer_loads_the_export(tiny_export):
    from qc.inference import Inferencer

    result = Inferencer(tiny_export).infer(striped_fabric(np.random.default_rng(0), 100, 150))
    assert result.heatmap.shape == (100, 150) and 0 <= result.score <= 1


def test_corrupted_checkpoint_is_refused(tmp_path, tiny_run):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "checkpoint.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(TrainingError, match="checkpoint.pt"):
        run_export(run, tmp_path / "m" / "1", name=None, version=None, command="x")
    assert not (tmp_path / "m" / "1" / "model.onnx").exists()


def test_missing_checkpoint_is_refused(tmp_path, tiny_run):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "checkpoint.pt").unlink()
    with pytest.raises(TrainingError, match="checkpoint.pt is missing"):
        run_export(run, tmp_path / "m" / "1", name=None, version=None, command="x")


def test_simplification_folds_constants_and_keeps_the_answer(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from training.export import simplify_onnx

    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    nodes = [
        helper.make_node("Add", ["one", "one"], ["two"]),  # constant arithmetic: foldable
        helper.make_node("Mul", ["x", "two"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])],
        initializer=[one],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    simplify_onnx(path)
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["Mul"]
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": np.ones(3, np.float32)})
    np.testing.assert_array_equal(out[0], [2.0, 2.0, 2.0])


def test_an_onnx_graph_that_drifts_from_torch_is_not_shipped(tmp_path, tiny_run, monkeypatch):
    import training.export as export

    real_export = export.export_onnx

    def export_a_drifted_copy(net, path, **kwargs):  # the graph's head bias moved by 0.5 logits
        drifted = load_run(tiny_run).net
        with torch.no_grad():
            drifted.head.bias += 0.5
        return real_export(drifted, path, **kwargs)

    monkeypatch.setattr(export, "export_onnx", export_a_drifted_copy)
    with pytest.raises(TrainingError, match="export parity failed"):
        run_export(tiny_run, tmp_path / "m" / "1", name=None, version=None, command="x")
    assert not list((tmp_path / "m" / "1").glob("*.onnx")) and not list((tmp_path / "m" / "1").glob(".*"))
