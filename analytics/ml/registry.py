"""MLflow for Naboria: the only module that imports ``mlflow`` (imported on first use, never at
import time of the web process's hot paths).

Tracking and registry live where ``settings.MLFLOW_TRACKING_URI`` says: by default a SQLite
file in NABORIA_VAR_DIR with artifacts under ``<NABORIA_VAR_DIR>/mlruns``, so nothing needs an
MLflow server; a tracking server URL works the same.

A model version holds a pyfunc model whose ``predict`` takes a table of the mart's feature
columns and returns calibrated probabilities (``mlflow.pyfunc.load_model(
"models:/naboria-ctr@champion")`` works where Naboria is installed), and inside it the two files
of analytics.ml.model that the ad server loads directly.

Entry points:
    log_candidate(training, tags=...)  one run: params, metrics, feature importance, the model
                                       (with its signature), registered as a new version
    champion(model_name)               the version under the serving alias, or None
    load_bundle(model_name, version)   that version's TrainedBundle
    promote(model_name, version)       moves the serving alias to the version
Used by analytics.ml.services (training, promotion) and ads.ranking (the champion to serve).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from analytics.ml.model import TrainedBundle

if TYPE_CHECKING:
    import pandas as pd

    from analytics.ml.training import Training

SERVING_ALIAS = "champion"
EXPERIMENT_PREFIX = "naboria-"
BUNDLE_ARTIFACT = "bundle"
# What a loaded pyfunc model needs besides Naboria's own code (given, not inferred: MLflow's
# inference starts a subprocess that imports the model, slow and noisy).
_REQUIREMENTS = ("xgboost-cpu", "pandas", "numpy", "pyarrow")


@dataclass(frozen=True)
class LoggedCandidate:
    run_id: str
    version: str


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


def _configured() -> Any:
    """mlflow, pointed at the current setting (tests switch it)."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
    return mlflow


def _client() -> Any:
    return _configured().MlflowClient()


def _experiment_id(name: str) -> str:
    client = _client()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(
        client.create_experiment(name, artifact_location=settings.MLFLOW_ARTIFACT_ROOT or None)
    )


def _python_model() -> Any:
    mlflow = _configured()

    class NaboriaModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
        """Calibrated probabilities for a table of feature columns."""

        def load_context(self, context: Any) -> None:
            self.bundle = TrainedBundle.load(Path(context.artifacts[BUNDLE_ARTIFACT]))

        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            return self.bundle.predict_proba(self.bundle.encoder.encode_frame(model_input))

    return NaboriaModel()


def log_candidate(
    training: Training, *, tags: dict[str, str], extra_metrics: dict[str, float]
) -> LoggedCandidate:
    """Log the training run and register its model as a new version (not promoted)."""
    mlflow = _configured()
    from mlflow.models import infer_signature

    task = training.task
    bundle = training.bundle
    # Types are inferred from many rows (a column may be empty in the first few), the example
    # stored with the model is short. MLflow's schemas have no unsigned integers (ClickHouse's
    # UInt64 ids): they are declared as signed 64-bit integers.
    sample = training.split.validation[bundle.encoder.names].head(1000)
    unsigned = sample.select_dtypes(include="unsignedinteger").columns
    sample = sample.astype(dict.fromkeys(unsigned, "int64"))
    example = sample.head(5)
    with (
        tempfile.TemporaryDirectory(prefix="naboria-model-") as folder,
        mlflow.start_run(
            experiment_id=_experiment_id(f"{EXPERIMENT_PREFIX}{task.kind}"),
            run_name=f"{task.kind} {training.split.validation_days[1]}",
            tags=tags,
        ) as run,
    ):
        mlflow.log_params(
            {
                **{f"xgb_{key}": value for key, value in training.params.items()},
                "mart": task.mart,
                "label": bundle.label,
                "features": ",".join(bundle.encoder.names),
                "train_days": "..".join(map(str, training.split.train_days)),
                "tune_days": "..".join(map(str, training.split.tune_days)),
                "validation_days": "..".join(map(str, training.split.validation_days)),
                "calibration": "platt",
            }
        )
        mlflow.log_metrics(
            {
                **training.metrics.as_dict("val"),
                **training.uncalibrated.as_dict("val_uncalibrated"),
                **training.baseline.as_dict("baseline"),
                "train_rows": len(training.split.train),
                "tune_rows": len(training.split.tune),
                "best_iteration": training.best_iteration,
                "fit_seconds": training.fit_seconds,
                "train_rows_per_second": training.train_rows_per_second,
                "calibration_slope": bundle.calibration.slope,
                "calibration_intercept": bundle.calibration.intercept,
                **extra_metrics,
            }
        )
        mlflow.log_dict(training.importance, "feature_importance.json")
        bundle_dir = bundle.save(Path(folder) / BUNDLE_ARTIFACT)
        with warnings.catch_warnings():
            # Advice for other kinds of models (type-hinted predict, integer columns that could
            # hold missing values): ours checks its input through the encoder.
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=_python_model(),
                artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
                signature=infer_signature(
                    sample, bundle.predict_proba(bundle.encoder.encode_frame(sample))
                ),
                input_example=example,
                registered_model_name=task.model_name,
                pip_requirements=[f"{name}=={metadata.version(name)}" for name in _REQUIREMENTS],
            )
    return LoggedCandidate(run_id=run.info.run_id, version=str(info.registered_model_version))


def champion(model_name: str) -> ModelVersion | None:
    """The version under the serving alias; None before the first promotion."""
    mlflow = _configured()
    try:
        version = _client().get_model_version_by_alias(model_name, SERVING_ALIAS)
    except mlflow.exceptions.MlflowException:
        # No registered model of that name yet, or no version under the alias.
        return None
    return ModelVersion(name=model_name, version=str(version.version), run_id=version.run_id)


def load_bundle(model_name: str, version: str) -> TrainedBundle:
    mlflow = _configured()
    with tempfile.TemporaryDirectory(prefix="naboria-model-") as folder:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version}", dst_path=folder
        )
        return TrainedBundle.load(Path(local) / "artifacts" / BUNDLE_ARTIFACT)


def promote(model_name: str, version: str) -> None:
    _client().set_registered_model_alias(model_name, SERVING_ALIAS, version)


def tag_version(model_name: str, version: str, *, tags: dict[str, str]) -> None:
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
