"""Metrics of a probability model on binary labels, in NumPy alone (no scikit-learn needed):
used by analytics.ml.training (validation metrics, the prior-rate baseline, the champion
comparison) and by bench/ctr_model.py (the AUC of the true click probabilities).

Entry points: auc(), log_loss(), expected_calibration_error(), evaluate().
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
CALIBRATION_BINS = 10
# Log loss of a prediction of exactly 0 or 1 that is wrong would be infinite.
EPSILON = 1e-7


@dataclass(frozen=True)
class Metrics:
    auc: float
    log_loss: float
    ece: float  # expected calibration error
    rows: int
    positive_rate: float
    mean_prediction: float

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_{name}": float(value) for name, value in asdict(self).items()}


def auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative (ties count half), from the rank-sum (Mann-Whitney U) formula. NaN without both
    classes."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.arange(1, s.size + 1)
    # Tied scores share the mean of their ranks.
    sorted_scores = s[order]
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [s.size]))
    mean_ranks = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(mean_ranks, ends - starts)
    rank_sum = ranks[y].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def log_loss(labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> float:
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1 - EPSILON)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def expected_calibration_error(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, *, bins: int = CALIBRATION_BINS
) -> float:
    """Mean |observed rate - mean prediction| over ``bins`` bins cut at quantiles of the
    predictions, weighted by rows. Quantile (equal-count) bins rather than equal-width ones:
    click probabilities crowd into a few percent, where equal-width bins would put nearly every
    row into the first one. Equal predictions always share a bin."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if y.size == 0:
        return float("nan")
    inner_edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1))[1:-1])
    which = np.searchsorted(inner_edges, p, side="right")
    rows = np.bincount(which)
    used = rows > 0
    observed = np.bincount(which, weights=y)[used] / rows[used]
    predicted = np.bincount(which, weights=p)[used] / rows[used]
    return float(np.sum(rows[used] * np.abs(observed - predicted)) / y.size)


def evaluate(labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> Metrics:
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    return Metrics(
        auc=auc(y, p),
        log_loss=log_loss(y, p),
        ece=expected_calibration_error(y, p),
        rows=int(y.size),
        positive_rate=float(y.mean()) if y.size else float("nan"),
        mean_prediction=float(p.mean()) if p.size else float("nan"),
    )
