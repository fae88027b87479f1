"""Training of the CTR and conversion models on the feature marts (issue 6/6).

The marts are read from their Parquet export (analytics.ml.export), not from ClickHouse: the
export is a fixed snapshot (a run can be repeated on the same rows), training needs no
ClickHouse connection (in the embedded profile the chdb folder is held by the web process, so
``manage.py train`` in another process could not open it), and pyarrow reads only the columns
training needs.

Steps of ``fit``: a time-based split in whole days (train | tune | validation, oldest first);
XGBoost (``tree_method="hist"``, native categorical splits) with early stopping on the tune
days; Platt calibration of its margins on the same tune days; validation metrics (AUC, log loss,
expected calibration error) next to the prior-rate baseline, a constant prediction of the
train days' positive rate. The validation days are never used to fit anything, so the
promotion rule (analytics.ml.promotion) can compare the candidate and the champion on them.

Entry points: TASKS, load_mart(), fit(); used by analytics.ml.services and bench/ctr_model.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import xgboost as xgb

from ads.ctr_model import Calibration, Encoder, FeatureSpec, TrainedBundle, calibrated
from analytics.ml.export import default_out_dir, mart_columns
from analytics.ml.metrics import Metrics, evaluate
from analytics.ml.model import MAX_CATEGORIES, fit_platt


@dataclass(frozen=True)
class Task:
    kind: str
    mart: str
    time_column: str
    model_name: str  # in the MLflow model registry


TASKS = {
    "ctr": Task("ctr", "mart_ctr_features", "impression_at", "naboria-ctr"),
    "conversion": Task(
        "conversion", "mart_conversion_features", "started_at", "naboria-conversion"
    ),
}

# Shallow trees and a floor on leaf size: the click signal is a sum of a few effects (see
# analytics.click_model), and deep trees on a 2-4 % positive rate mostly fit noise.
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "tree_method": "hist",
    "max_depth": 3,
    "eta": 0.1,
    "min_child_weight": 10.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "lambda": 5.0,
    "max_bin": 64,
    # Categories with few values split one against the rest; more values are partitioned.
    "max_cat_to_onehot": 8,
    "seed": 7,
}
MAX_ROUNDS = 500
EARLY_STOPPING_ROUNDS = 30


class NotEnoughData(Exception):
    """The mart has too few days or rows (or no positive labels) for the requested split."""


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    tune: pd.DataFrame
    validation: pd.DataFrame
    train_days: tuple[date, date]
    tune_days: tuple[date, date]
    validation_days: tuple[date, date]


@dataclass
class Training:
    """A fitted candidate with everything to log about it."""

    task: Task
    bundle: TrainedBundle
    split: Split
    params: dict[str, Any]
    metrics: Metrics  # of the calibrated model on the validation days
    uncalibrated: Metrics
    baseline: Metrics  # the train days' positive rate as a constant prediction
    importance: dict[str, dict[str, float]]  # feature -> {"gain", "total_gain", "weight"}
    best_iteration: int
    fit_seconds: float
    total_seconds: float

    @property
    def train_rows_per_second(self) -> float:
        return len(self.split.train) / self.fit_seconds if self.fit_seconds else float("nan")

    def validation_labels(self) -> np.ndarray:
        return self.split.validation[self.bundle.label].to_numpy(dtype=np.float64)


def feature_columns(task: Task) -> list[tuple[str, str]]:
    """(name, "categorical" | "numeric") of the mart's features, from its dbt schema."""
    return [
        (column["name"], column.get("meta", {}).get("kind", "numeric"))
        for column in mart_columns(task.mart, role="feature")
    ]


def label_column(task: Task) -> str:
    labels = mart_columns(task.mart, role="label")
    if len(labels) != 1:
        raise ValueError(f"{task.mart} should document exactly one label column")
    return str(labels[0]["name"])


def load_mart(*, task: Task, marts_dir: Path | None = None) -> pd.DataFrame:
    """The mart's features, label and time columns from its Parquet export
    (``<marts_dir>/<mart>/date=YYYY-MM-DD/part.parquet``)."""
    directory = (marts_dir or default_out_dir()) / task.mart
    if not directory.is_dir():
        raise NotEnoughData(
            f"no export of {task.mart} in {directory}: run `manage.py dbt build` and "
            "`manage.py export_marts` first"
        )
    columns = [
        *(name for name, _ in feature_columns(task)),
        label_column(task),
        "event_date",
        task.time_column,
    ]
    dataset = pads.dataset(directory, format="parquet", partitioning="hive")
    return dataset.to_table(columns=columns).to_pandas()


def split_by_days(
    frame: pd.DataFrame, *, validation_days: int, tune_days: int, label: str
) -> Split:
    """Train on the oldest days, tune (early stopping, calibration) on the next ``tune_days``,
    validate on the last ``validation_days`` (the newest day in the data counts as the last)."""
    days = pd.to_datetime(frame["event_date"]).dt.date
    if days.empty:
        raise NotEnoughData("the mart is empty")
    last = max(days)
    validation_start = last - timedelta(days=validation_days - 1)
    tune_start = validation_start - timedelta(days=tune_days)
    first = min(days)
    if first >= tune_start:
        raise NotEnoughData(
            f"{(last - first).days + 1} days of data; need more than "
            f"{validation_days + tune_days} (validation + tune days)"
        )
    parts = {
        "train": frame[(days < tune_start).to_numpy()],
        "tune": frame[((days >= tune_start) & (days < validation_start)).to_numpy()],
        "validation": frame[(days >= validation_start).to_numpy()],
    }
    for name, part in parts.items():
        positives = int(part[label].sum())
        if positives == 0 or positives == len(part):
            raise NotEnoughData(f"the {name} days have {len(part)} rows, {positives} positive")
    return Split(
        train=parts["train"],
        tune=parts["tune"],
        validation=parts["validation"],
        train_days=(first, tune_start - timedelta(days=1)),
        tune_days=(tune_start, validation_start - timedelta(days=1)),
        validation_days=(validation_start, last),
    )


def feature_specs(train: pd.DataFrame, columns: list[tuple[str, str]]) -> list[FeatureSpec]:
    """Categories and serving defaults, learnt from the train days only."""
    specs = []
    for name, kind in columns:
        values = train[name]
        if kind == "categorical":
            counts = values.astype("string").value_counts(dropna=True)
            categories = tuple(str(value) for value in counts.index[:MAX_CATEGORIES])
            default: str | float | None = categories[0] if categories else None
            specs.append(FeatureSpec(name, kind, tuple(sorted(categories)), default))
        else:
            numbers = pd.to_numeric(values, errors="coerce")
            median = numbers.median()
            specs.append(
                FeatureSpec(name, "numeric", (), None if pd.isna(median) else float(median))
            )
    return specs


class _Progress(xgb.callback.TrainingCallback):
    def __init__(self, on_round: Callable[[int], None]) -> None:
        super().__init__()
        self.on_round = on_round

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        self.on_round(epoch + 1)
        return False  # never asks to stop: early stopping decides


def fit(
    *,
    task: Task,
    frame: pd.DataFrame,
    validation_days: int = 7,
    tune_days: int = 3,
    params: dict[str, Any] | None = None,
    max_rounds: int = MAX_ROUNDS,
    early_stopping_rounds: int = EARLY_STOPPING_ROUNDS,
    on_round: Callable[[int], None] | None = None,
) -> Training:
    """Fit a candidate on ``frame`` (as load_mart returns it); ``on_round`` is called after each
    boosting round with the number of rounds done (progress bars)."""
    started = time.monotonic()
    label = label_column(task)
    split = split_by_days(frame, validation_days=validation_days, tune_days=tune_days, label=label)
    encoder = Encoder(feature_specs(split.train, feature_columns(task)))
    matrices = {
        name: xgb.DMatrix(
            encoder.encode_frame(part),
            label=part[label].to_numpy(dtype=np.float32),
            feature_names=encoder.names,
            feature_types=encoder.feature_types,
            enable_categorical=True,
        )
        for name, part in (("train", split.train), ("tune", split.tune))
    }
    merged = {**DEFAULT_PARAMS, **(params or {})}
    fit_started = time.monotonic()
    booster = xgb.train(
        merged,
        matrices["train"],
        num_boost_round=max_rounds,
        evals=[(matrices["tune"], "tune")],
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
        callbacks=[_Progress(on_round)] if on_round else None,
    )
    fit_seconds = time.monotonic() - fit_started
    best_iteration = int(booster.best_iteration)
    # Keep only the rounds early stopping chose: the saved model is what was validated.
    booster = booster[: best_iteration + 1]

    bundle = TrainedBundle(
        kind=task.kind,
        label=label,
        encoder=encoder,
        calibration=Calibration(),
        booster=booster,
    )
    tune_margins = bundle.margins(encoder.encode_frame(split.tune))
    bundle.calibration = fit_platt(tune_margins, split.tune[label].to_numpy())

    labels = split.validation[label].to_numpy(dtype=np.float64)
    margins = bundle.margins(encoder.encode_frame(split.validation))
    prior = float(split.train[label].mean())
    bundle.info = {
        "train_days": [str(day) for day in split.train_days],
        "tune_days": [str(day) for day in split.tune_days],
        "validation_days": [str(day) for day in split.validation_days],
        "prior_rate": prior,
    }
    scores = {
        kind: booster.get_score(importance_type=kind) for kind in ("gain", "total_gain", "weight")
    }
    # One value per feature for these importance types (lists only for multi-output models).
    importance = {
        name: {
            kind: float(cast(float, by_feature.get(name, 0.0)))
            for kind, by_feature in scores.items()
        }
        for name in encoder.names
    }
    return Training(
        task=task,
        bundle=bundle,
        split=split,
        params=merged,
        metrics=evaluate(labels, calibrated(margins, bundle.calibration)),
        uncalibrated=evaluate(labels, 1.0 / (1.0 + np.exp(-margins))),
        baseline=evaluate(labels, np.full(labels.size, prior)),
        importance=importance,
        best_iteration=best_iteration,
        fit_seconds=fit_seconds,
        total_seconds=time.monotonic() - started,
    )
