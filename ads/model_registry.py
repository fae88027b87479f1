"""The MLflow model registry as the ad server reads it: which version holds the serving alias,
and that version's model bundle (ads.ctr_model). Also the one place that imports ``mlflow``
and points it at ``settings.MLFLOW_TRACKING_URI`` (imported on first use, never at import time
of the web process's hot paths), which the training side (analytics.ml.registry: logging,
registering and promoting versions) uses as well.

Tracking and registry live where ``settings.MLFLOW_TRACKING_URI`` says: by default a SQLite
file in NABORIA_VAR_DIR with artifacts under ``<NABORIA_VAR_DIR>/mlruns``, so nothing needs an
MLflow server; a tracking server URL works the same.

Entry points:
    champion(model_name)               the version under the serving alias, or None
    load_bundle(model_name, version)   that version's TrainedBundle
    configured_mlflow()                the mlflow module, pointed at the current setting
Used by ads.ranking (the champion to serve) and analytics.ml (training, promotion).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

from ads.ctr_model import TrainedBundle

SERVING_ALIAS = "champion"
# The folder of a model version's artifacts that holds the bundle's two files.
BUNDLE_ARTIFACT = "bundle"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str


@cache
def _mlflow() -> Any:
    # A progress bar per artifact download means nothing in a server's log.
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    import mlflow

    # MLflow sets up its own logger at INFO when imported (each registration, each schema
    # inference step): only its warnings belong in Naboria's logs.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return mlflow


def configured_mlflow() -> Any:
    """mlflow, pointed at the current setting (tests switch it)."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
    return mlflow


def mlflow_client() -> Any:
    return _client(settings.MLFLOW_TRACKING_URI)


@lru_cache(maxsize=4)
def _client(tracking_uri: str) -> Any:
    # One per registry: building a client opens its store (for SQLite, an engine and a schema
    # check), which every web process did once a minute to ask for the champion.
    return _mlflow().MlflowClient(tracking_uri=tracking_uri)


def registry_exists() -> bool:
    """False while the registry is a SQLite file that nothing has created yet (no model was
    ever registered). Opening it would create it: every web process importing MLflow and
    running its schema migrations on its refresh thread, seconds holding the GIL while it
    serves ads."""
    uri = settings.MLFLOW_TRACKING_URI
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def champion(model_name: str) -> ModelVersion | None:
    """The version under the serving alias; None before the first promotion."""
    if not registry_exists():
        return None
    mlflow = configured_mlflow()
    try:
        version = mlflow_client().get_model_version_by_alias(model_name, SERVING_ALIAS)
    except mlflow.exceptions.MlflowException:
        # No registered model of that name yet, or no version under the alias.
        return None
    return ModelVersion(name=model_name, version=str(version.version), run_id=version.run_id)


def load_bundle(model_name: str, version: str) -> TrainedBundle:
    mlflow = configured_mlflow()
    with tempfile.TemporaryDirectory(prefix="naboria-model-") as folder:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version}", dst_path=folder
        )
        return TrainedBundle.load(Path(local) / "artifacts" / BUNDLE_ARTIFACT)
