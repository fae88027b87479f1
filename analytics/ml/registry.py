"""MLflow for Naboria's training: logging a candidate, registering it as a new version,
tagging and promoting versions. The connection to MLflow and the read side the ad server uses
(the champion, loading its bundle) are ads.model_registry's.

A model version holds a pyfunc model whose ``predict`` takes a table of the mart's feature
columns and returns calibrated probabilities (``mlflow.pyfunc.load_model(
"models:/naboria-ctr@champion")`` works where Naboria is installed), and inside it the two files
of ads.ctr_model that the ad server loads directly.

Entry points:
    log_candidate(training, tags=...)  one run: params, metrics, feature importance, the model
                                       (with its signature), registered as a new version
    promote(model_name, version)       moves the serving alias to the version
    tag_version(model_name, version, tags=...)
Used by analytics.ml.services (training, promotion).
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from ads.ctr_model import TrainedBundle
from ads.model_registry import BUNDLE_ARTIFACT, SERVING_ALIAS, configured_mlflow, mlflow_client
from analytics.ml.training import Training

if TYPE_CHECKING:
    import pandas as pd

EXPERIMENT_PREFIX = "naboria-"
# What a loaded pyfunc model needs besides Naboria's own code (given, not inferred: MLflow's
# inference starts a subprocess that imports the model, slow and noisy).
_REQUIREMENTS = ("xgboost-cpu", "pandas", "numpy", "pyarrow")


@dataclass(frozen=True)
class LoggedCandidate:
    run_id: str
    version: str


def _experiment_id(name: str) -> str:
    client = mlflow_client()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(
        client.create_experiment(name, artifact_location=settings.MLFLOW_ARTIFACT_ROOT or None)
    )


def _python_model() -> Any:
    mlflow = configured_mlflow()

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
    mlflow = configured_mlflow()
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
                signature=mlflow.models.infer_signature(
                    sample, bundle.predict_proba(bundle.encoder.encode_frame(sample))
                ),
                input_example=example,
                registered_model_name=task.model_name,
                pip_requirements=[f"{name}=={metadata.version(name)}" for name in _REQUIREMENTS],
            )
    return LoggedCandidate(run_id=run.info.run_id, version=str(info.registered_model_version))


def promote(model_name: str, version: str) -> None:
    mlflow_client().set_registered_model_alias(model_name, SERVING_ALIAS, version)


def tag_version(model_name: str, version: str, *, tags: dict[str, str]) -> None:
    client = mlflow_client()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
