"""Celery tasks of the analytics app (the periodic ones are scheduled in naboria.periodic_jobs)."""

import logging
from typing import Any

from celery import chain, shared_task

from analytics import session_facts

logger = logging.getLogger(__name__)


@shared_task
def refresh_session_facts() -> int:
    return session_facts.refresh()


# The ML tasks import their services when they run: XGBoost, pandas and MLflow stay out of the
# processes that only import this module to register the tasks.


@shared_task
def build_feature_marts() -> int:
    """dbt build (every model and its tests), then the marts' Parquet export; rows exported."""
    from analytics.ml import services

    return services.marts_refresh()


@shared_task
def train_model(kind: str) -> dict[str, Any]:
    """Train the ``kind`` model ("ctr" or "conversion"), register it, promote it if it wins."""
    from analytics.ml import services
    from analytics.ml.training import NotEnoughData

    try:
        outcome = services.model_train(kind=kind)
    except NotEnoughData as error:
        # A new installation has no traffic to learn from yet: nothing to do, not a failure.
        logger.warning("%s model not trained: %s", kind, error)
        return {"skipped": str(error)}
    return {
        "version": outcome.version,
        "promoted": outcome.decision.promote,
        "reason": outcome.decision.reason,
    }


@shared_task
def refresh_models() -> None:
    """The marts, then each model, in order: a failed step (a dbt test, say) stops the chain,
    so no model trains on marts that did not pass their tests."""
    chain(
        build_feature_marts.si(), train_model.si("ctr"), train_model.si("conversion")
    ).apply_async()
