"""The statistic of good images' scores that a threshold is set from: one rule for the network's
image threshold (training/calibrate.py) and the unrepeated-structure cue's (qc/self_similarity.py)."""

from __future__ import annotations

import math

import numpy as np


def good_statistic(scores, target_false_reject_rate: float) -> tuple[float, str]:
    """(statistic, rule name). With n >= 1 / target scores the empirical (1 - target) quantile is
    estimable and used ('good-quantile'); with fewer, the quantile would just be the maximum, and the
    maximum of n samples sits only at about the 1 - 1/(n+1) quantile ('good-max'): callers add a
    margin to either."""
    values = np.asarray(scores, np.float64)
    if values.size == 0:
        raise ValueError("a threshold needs at least one good image's score")
    if values.size >= math.ceil(1.0 / target_false_reject_rate):
        return float(np.quantile(values, 1 - target_false_reject_rate, method="higher")), "good-quantile"
    return float(values.max()), "good-max"
