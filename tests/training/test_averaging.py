"""The moving average of the weights: its arithmetic, and that training validates and ships it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.averaging import WeightAverage

from .test_train_features import feed_and_validation, tiny_config


def linear(value: float) -> nn.Linear:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(value)
    return layer


def test_the_average_forgets_early_weights_quickly_then_moves_at_the_decay():
    net = linear(0.0)
    average = WeightAverage(net, decay=0.9)
    with torch.no_grad():
        net.weight.fill_(1.0)
    average.update(net)  # warm-up decay min(0.9, 2/11)
    assert average.weights["weight"][0, 0].item() == pytest.approx(9 / 11)
    for _ in range(200):
        average.update(net)
    assert average.current_decay() == pytest.approx(0.9)
    assert average.weights["weight"][0, 0].item() == pytest.approx(1.0, abs=1e-6)


def test_swapped_in_restores_the_live_weights_even_after_an_error():
    net = linear(0.0)
    average = WeightAverage(net, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(4.0)
    with pytest.raises(RuntimeError), average.swapped_in(net):
        assert net.weight[0, 0].item() == 0.0
        raise RuntimeError("validation failed")
    assert net.weight[0, 0].item() == 4.0


def test_state_round_trips():
    net = linear(0.0)
    average = WeightAverage(net, decay=0.99)
    with torch.no_grad():
        net.weight.fill_(2.0)
    average.update(net)
    copy = WeightAverage(linear(7.0), decay=0.99)
    copy.restore(average.state())
    assert copy.updates == 1 and torch.equal(copy.weights["weight"], average.weights["weight"])


def test_a_decay_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(linear(0.0), decay=1.0)


def test_training_validates_and_ships_the_average_not_the_last_weights():
    from training.net import single_pass
    from training.train import train_network
    from training.validation import score_validation

    results = {}
    for decay in (0.0, 0.9):
        config = tiny_config(steps=6, lr=0.05, ema_decay=decay)
        feed, vset = feed_and_validation(config)
        results[decay] = train_network(config, feed, device=torch.device("cpu"), log=lambda _: None, validation=vset)
    live, averaged = results[0.0].net.state_dict(), results[0.9].net.state_dict()
    assert any(not torch.allclose(live[k], averaged[k]) for k in live)
    # the last validation scored exactly the weights that were returned (single pass, as training validates)
    with single_pass(results[0.9].net):
        rescored = score_validation(results[0.9].net, vset)["signal"]
    # (to float32 rounding: the rescoring may run other convolution kernels than training did)
    assert results[0.9].validations[-1]["signal"] == pytest.approx(rescored, abs=1e-5)
    assert abs(results[0.0].validations[-1]["signal"] - rescored) > 1e-4  # the live weights score apart
