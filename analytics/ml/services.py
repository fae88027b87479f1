"""Writes of the ML layer: refresh the feature marts, train a model and promote it if it wins.

Entry points (keyword-only, called by ``manage.py train``, the Celery tasks in
analytics.tasks and bench/ctr_model.py):
    marts_refresh()                 dbt build, then the Parquet export of the marts
    model_train(kind=...)           load the export, fit, compare with the champion on the same
                                    validation rows, log and register in MLflow, promote by
                                    analytics.ml.promotion's rule
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ads import model_registry
from analytics.ml import promotion, registry
from analytics.ml.dbt_runner import dbt_build
from analytics.ml.export import export_marts
from analytics.ml.metrics import Metrics, evaluate
from analytics.ml.training import TASKS, Training, fit, load_mart

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    training: Training
    version: str
    run_id: str
    champion_version: str | None  # the champion it was compared with
    champion_metrics: Metrics | None
    decision: promotion.Decision


def marts_refresh(*, out_dir: Path | None = None) -> int:
    """Build every dbt model (and run its tests), then export the marts; the rows exported."""
    dbt_build(quiet=True)
    return sum(mart.rows for mart in export_marts(out_dir=out_dir))


def _champion_metrics(training: Training) -> tuple[str | None, Metrics | None]:
    current = model_registry.champion(training.task.model_name)
    if current is None:
        return None, None
    try:
        bundle = model_registry.load_bundle(current.name, current.version)
    except Exception:
        # A champion that cannot be loaded cannot serve either: compare as if there were none.
        logger.exception("champion %s v%s could not be loaded", current.name, current.version)
        return current.version, None
    validation = training.split.validation
    probabilities = bundle.predict_proba(bundle.encoder.encode_frame(validation))
    return current.version, evaluate(training.validation_labels(), probabilities)


def model_train(
    *,
    kind: str,
    marts_dir: Path | None = None,
    history_days: int | None = None,
    validation_days: int = 7,
    tune_days: int = 3,
    params: dict[str, object] | None = None,
    max_rounds: int | None = None,
    on_round: Callable[[int], None] | None = None,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> TrainOutcome:
    """Train the ``kind`` model ("ctr" or "conversion") on the exported mart (its last
    ``history_days`` days, default all), register it, and promote it if it beats the champion."""
    task = TASKS[kind]
    on_stage("loading the mart")
    frame = load_mart(task=task, marts_dir=marts_dir)
    if history_days is not None and not frame.empty:
        first = max(frame["event_date"]) - timedelta(days=history_days - 1)
        frame = frame[frame["event_date"] >= first]
    on_stage("training")
    training = fit(
        task=task,
        frame=frame,
        validation_days=validation_days,
        tune_days=tune_days,
        params=dict(params or {}),
        on_round=on_round,
        **({"max_rounds": max_rounds} if max_rounds is not None else {}),
    )
    on_stage("comparing with the champion")
    champion_version, champion_metrics = _champion_metrics(training)
    decision = promotion.decide(
        candidate=training.metrics, baseline=training.baseline, champion=champion_metrics
    )
    on_stage("logging to MLflow")
    tags = {
        "promotion": "promoted" if decision.promote else "not promoted",
        "promotion_reason": decision.reason,
        "compared_with": f"v{champion_version}" if champion_version else "no champion",
    }
    logged = registry.log_candidate(
        training,
        tags=tags,
        extra_metrics=champion_metrics.as_dict("champion_val") if champion_metrics else {},
    )
    registry.tag_version(task.model_name, logged.version, tags=tags)
    if decision.promote:
        registry.promote(task.model_name, logged.version)
    logger.info("%s model v%s: %s (%s)", kind, logged.version, tags["promotion"], decision.reason)
    return TrainOutcome(
        training=training,
        version=logged.version,
        run_id=logged.run_id,
        champion_version=champion_version,
        champion_metrics=champion_metrics,
        decision=decision,
    )
