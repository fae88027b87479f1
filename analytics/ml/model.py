"""The training side of the model format of ads.ctr_model (which the ad server scores with):
how many categories a feature keeps, and Platt calibration of a booster's margins.

Training (analytics.ml.training) builds an ads.ctr_model.TrainedBundle with these, MLflow
stores it (analytics.ml.registry), and the ad server scores with it in process (ads.ranking).

Entry points: MAX_CATEGORIES, fit_platt.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ads.ctr_model import Calibration

# Model versions registered before the format moved to ads.ctr_model hold a pickled pyfunc
# wrapper that names ``analytics.ml.model.TrainedBundle``: ``mlflow.pyfunc.load_model`` of
# those versions needs the name here.
from ads.ctr_model import TrainedBundle as TrainedBundle

# A categorical feature keeps the most frequent values seen in training, at most this many.
MAX_CATEGORIES = 256


def fit_platt(margins: npt.ArrayLike, labels: npt.ArrayLike, *, steps: int = 50) -> Calibration:
    """Platt scaling by Newton's method on the two parameters (log loss is convex in them).

    Platt rather than isotonic regression: two parameters cannot overfit a small held-out
    slice, and a monotone map keeps the model's ranking (its AUC) exactly."""
    m = np.asarray(margins, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if m.size == 0 or y.min() == y.max():
        return Calibration()
    slope, intercept = 1.0, 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(slope * m + intercept)))
        weight = np.maximum(p * (1 - p), 1e-12)
        gradient = np.array([np.dot(p - y, m), np.sum(p - y)])
        hessian = np.array(
            [[np.dot(weight, m * m), np.dot(weight, m)], [np.dot(weight, m), np.sum(weight)]]
        )
        try:
            step = np.linalg.solve(hessian + 1e-9 * np.eye(2), gradient)
        except np.linalg.LinAlgError:
            break
        slope, intercept = slope - step[0], intercept - step[1]
        if np.abs(step).max() < 1e-9:
            break
    # A flat or inverted fit would reorder the model's ranking: keep the model's own margins.
    if not (slope > 0 and math.isfinite(slope) and math.isfinite(intercept)):
        return Calibration()
    return Calibration(slope=float(slope), intercept=float(intercept))
