"""The model that ships in models/default: what `make run` serves out of the box."""

import numpy as np

from qc.decision import decide, find_defects
from qc.inference import Inferencer
from qc.synth import generate_panel
from training.export import PARITY_TOLERANCE


def test_shipped_model_verifies_and_records_how_it_was_made(default_model_dir):
    inferencer = Inferencer(default_model_dir)
    card = inferencer.card
    assert (default_model_dir / "model.onnx").stat().st_size < 10 * 1024 * 1024
    assert card.training.command.startswith("qc train --config configs/train/default.yaml")
    assert card.export_command.startswith("qc export")
    assert card.parity.max_abs_diff_heatmap <= PARITY_TOLERANCE and card.parity.verdicts_identical
    assert 0.0 < card.thresholds.image < 1.0
    assert card.thresholds.calibration.target_false_reject_rate == 0.01


def test_shipped_model_inspects_a_simulated_line_frame(default_model_dir):
    inferencer = Inferencer(default_model_dir)
    frame = generate_panel(np.random.default_rng(0), size_px=(480, 640), defect_probability=1.0)
    result = inferencer.infer(frame.image)
    assert result.heatmap.shape == (480, 640)
    assert 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0
    decision = decide(result, inferencer.card)
    assert decision.verdict in ("pass", "fail")


def test_shipped_model_has_a_type_head_that_names_synthetic_defects(default_model_dir):
    from qc.card import load_card
    from qc.defect_types import GEOMETRY, NOT_A_DEFECT, load_type_classifier
    from qc.synth import DEFECTS, generate_sample

    card = load_card(default_model_dir)
    classifier = load_type_classifier(default_model_dir, card, threads=2)
    assert classifier is not None and set(classifier.types) == set(DEFECTS) | {NOT_A_DEFECT}
    assert classifier.geometry == GEOMETRY  # it sees how far across the image a region runs
    assert card.type_head.training_command.startswith("qc train-types --synthetic")
    for kind in ("hole", "stain"):
        top_right, labels = 0, []
        for seed in range(5):  # a fresh tile the head never trained on (its seeds are [0, type, index])
            sample = generate_sample(np.random.default_rng([99, seed]), defect=kind, seam=False)
            heat = sample.mask.astype(np.float32) / 255  # a perfect detector's heatmap
            defects = find_defects(heat, 0.5, min_area_px=6)
            probabilities = classifier.region_probabilities(sample.image, heat, [defects[0].box], 0.5)
            top_right += classifier.types[int(probabilities.argmax())] == kind
            labels.append(classifier.classify(sample.image, heat, defects[:1], 0.5)[0].type)
        assert top_right >= 4, f"the head's top type was right for {top_right} of 5 synthetic {kind}s"
        # Unsure regions stay "defect" (below the card's min_confidence); a confident label is right.
        assert set(labels) <= {kind, "defect"} and kind in labels, labels
