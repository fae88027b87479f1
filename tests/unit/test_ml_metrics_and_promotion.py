"""Model metrics against brute-force definitions, Platt calibration, and the promotion rule
(analytics.ml.metrics, analytics.ml.model.fit_platt, analytics.ml.promotion)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ads.ctr_model import calibrated
from analytics.ml.metrics import Metrics, auc, evaluate, expected_calibration_error, log_loss
from analytics.ml.model import fit_platt
from analytics.ml.promotion import decide


def brute_force_auc(labels: list[int], scores: list[float]) -> float:
    rows = list(zip(scores, labels, strict=True))
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0
        for (p, lp), (n, ln) in itertools.product(rows, rows)
        if lp == 1 and ln == 0
    ]
    return sum(pairs) / len(pairs)


def test_auc_counts_ordered_pairs_and_half_ties():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 60).tolist()
    scores = rng.integers(0, 6, 60).astype(float).tolist()  # many ties
    assert auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores))
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc([0, 1], [0.5, 0.5]) == 0.5
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_log_loss_and_calibration_error():
    assert log_loss([1, 0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert math.isfinite(log_loss([1], [0.0]))  # clipped, not infinite
    labels = np.array([0] * 90 + [1] * 10)
    assert expected_calibration_error(labels, np.full(100, 0.1)) == pytest.approx(0.0)
    assert expected_calibration_error(labels, np.full(100, 0.3)) == pytest.approx(0.2)


def test_platt_scaling_calibrates_a_scaled_model_and_keeps_its_order():
    rng = np.random.default_rng(2)
    true_logits = rng.normal(-3, 1, 50_000)
    labels = rng.random(true_logits.size) < 1 / (1 + np.exp(-true_logits))
    margins = 2.0 * true_logits + 1.5  # overconfident and shifted
    calibration = fit_platt(margins, labels)
    assert calibration.slope == pytest.approx(0.5, abs=0.05)
    assert calibration.intercept == pytest.approx(-0.75, abs=0.2)
    probabilities = calibrated(margins, calibration)
    raw = 1 / (1 + np.exp(-margins))
    assert expected_calibration_error(labels, probabilities) < 0.005
    assert expected_calibration_error(labels, raw) > 0.02
    assert auc(labels, probabilities) == pytest.approx(auc(labels, raw))


def test_platt_keeps_the_identity_when_labels_are_all_one_class():
    assert fit_platt([0.1, 0.2], [0, 0]).slope == 1.0


def metrics(log_loss_value: float, auc_value: float = 0.7) -> Metrics:
    return Metrics(
        auc=auc_value,
        log_loss=log_loss_value,
        ece=0.01,
        rows=1000,
        positive_rate=0.03,
        mean_prediction=0.03,
    )


def test_a_better_candidate_is_promoted_and_a_worse_one_is_not():
    baseline = metrics(0.20, 0.5)
    assert decide(candidate=metrics(0.17), baseline=baseline, champion=None).promote
    assert decide(candidate=metrics(0.17), baseline=baseline, champion=metrics(0.18)).promote
    worse = decide(candidate=metrics(0.18), baseline=baseline, champion=metrics(0.17))
    assert not worse.promote
    assert "champion" in worse.reason


def test_a_tie_keeps_the_champion_and_auc_alone_does_not_promote():
    baseline = metrics(0.20, 0.5)
    assert not decide(candidate=metrics(0.17), baseline=baseline, champion=metrics(0.17)).promote
    higher_auc_worse_loss = decide(
        candidate=metrics(0.175, 0.75), baseline=baseline, champion=metrics(0.17, 0.70)
    )
    assert not higher_auc_worse_loss.promote


def test_a_candidate_that_does_not_beat_the_prior_rate_is_never_promoted():
    decision = decide(candidate=metrics(0.21), baseline=metrics(0.20, 0.5), champion=None)
    assert not decision.promote
    assert "baseline" in decision.reason


def test_evaluate_reports_rows_and_rates():
    result = evaluate([0, 1, 0, 0], [0.1, 0.6, 0.2, 0.1])
    assert (result.rows, result.positive_rate, result.auc) == (4, 0.25, 1.0)
    assert result.as_dict("val")["val_auc"] == 1.0
