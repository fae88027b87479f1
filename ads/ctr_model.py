"""A trained model as the ad server scores it, and as it travels: the XGBoost trees plus a
spec saying how to turn a row of features into the model's input and its output into a
calibrated probability. The CTR model is served from it (ads.ranking); the conversion model is
trained and registered in the same format.

Training (analytics.ml.training) builds it, MLflow stores it as two files in the model's
artifacts (analytics.ml.registry writes them, ads.model_registry loads the champion's), and
the ad server scores with it in process (ads.ranking). It lives here, below analytics, because
the ad server needs it to serve and must not import the training side.

Encoding is ours, not XGBoost's: each categorical feature keeps the list of values seen in
training (the most frequent analytics.ml.model.MAX_CATEGORIES) and a value is sent as its
index; a value outside the list, or no value, is missing (NaN), which XGBoost routes down each
split's learned default branch. Training and serving share ``encode_rows`` / ``encode_frame``,
so the codes cannot drift apart.

Scoring uses ``Booster.inplace_predict`` on a small float32 NumPy matrix: no DMatrix and no
pandas on the decision path (a few hundred microseconds for a dozen ads), with one thread, as
a decision scores only a handful of rows.

Entry points: TrainedBundle (predict_proba, encode_rows, save, load), FeatureSpec, Encoder,
Calibration, calibrated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb

BOOSTER_FILE = "booster.json"
SPEC_FILE = "spec.json"
Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str  # "categorical" | "numeric"
    # categorical: the values seen in training; a value's code is its index
    categories: tuple[str, ...] = ()
    # the value a caller that does not know this feature sends (the ad server knows only part
    # of a visit): the most frequent category or the median, in training
    default: str | float | None = None

    @property
    def is_categorical(self) -> bool:
        return self.kind == "categorical"


@dataclass(frozen=True)
class Calibration:
    """Platt scaling: p = sigmoid(slope * margin + intercept), fitted on a held-out slice."""

    slope: float = 1.0
    intercept: float = 0.0


class Encoder:
    """Rows of features to the model's input matrix, the same way in training and serving."""

    def __init__(self, features: Iterable[FeatureSpec]) -> None:
        self.features = tuple(features)
        self._columns = {feature.name: column for column, feature in enumerate(self.features)}
        self._codes = [
            {value: code for code, value in enumerate(feature.categories)}
            for feature in self.features
        ]

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def feature_types(self) -> list[str]:
        """XGBoost's feature types: "c" (categorical, by code) or "q" (numeric)."""
        return ["c" if feature.is_categorical else "q" for feature in self.features]

    def knows(self, name: str, value: Any) -> bool:
        """Whether ``value`` of the categorical feature ``name`` was seen in training."""
        column = self._columns.get(name)
        return column is not None and str(value) in self._codes[column]

    def encode_rows(
        self, rows: Sequence[Mapping[str, Any]], *, shared: Mapping[str, Any] | None = None
    ) -> Matrix:
        """The model's input for rows given as mappings: each row is ``shared`` (what all rows
        have in common, encoded once) updated with the row's own values. A feature neither
        gives takes its default (the ad server knows only part of a visit); None is missing."""
        common = shared or {}
        base = np.array(
            [
                self._encode(column, common.get(feature.name, feature.default))
                for column, feature in enumerate(self.features)
            ],
            dtype=np.float32,
        )
        matrix = np.tile(base, (len(rows), 1))
        for index, row in enumerate(rows):
            for name, value in row.items():
                column = self._columns.get(name)
                if column is not None:
                    matrix[index, column] = self._encode(column, value)
        return matrix

    def _encode(self, column: int, value: Any) -> float:
        if value is None:
            return math.nan
        if self.features[column].is_categorical:
            code = self._codes[column].get(str(value))
            return math.nan if code is None else float(code)
        return float(value)

    def encode_frame(self, frame: pd.DataFrame) -> Matrix:
        """The same encoding as ``encode_rows`` for a whole table (training, evaluation); a
        column the table lacks is missing."""
        matrix = np.full((len(frame), len(self.features)), np.nan, dtype=np.float32)
        for column, (feature, codes) in enumerate(zip(self.features, self._codes, strict=True)):
            if feature.name not in frame.columns:
                continue
            values = frame[feature.name]
            if feature.is_categorical:
                mapped = values.astype("string").map(codes)
                matrix[:, column] = pd.to_numeric(mapped, errors="coerce").to_numpy(
                    dtype=np.float32, na_value=np.nan
                )
            else:
                matrix[:, column] = pd.to_numeric(values, errors="coerce").to_numpy(
                    dtype=np.float32, na_value=np.nan
                )
        return matrix


@dataclass
class TrainedBundle:
    kind: str  # "ctr" | "conversion"
    label: str
    encoder: Encoder
    calibration: Calibration
    booster: xgb.Booster
    info: dict[str, Any] = field(default_factory=dict)  # training window, metrics: for people

    def __post_init__(self) -> None:
        # A decision scores a dozen rows: more threads would only cost the hand-off.
        self.booster.set_param({"nthread": 1})

    def margins(self, matrix: Matrix) -> npt.NDArray[np.float64]:
        if matrix.shape[0] == 0:
            return np.zeros(0)
        raw = self.booster.inplace_predict(matrix, predict_type="margin", validate_features=False)
        return np.asarray(raw, dtype=np.float64)

    def predict_proba(self, matrix: Matrix) -> npt.NDArray[np.float64]:
        """Calibrated probabilities for encoded rows."""
        return calibrated(self.margins(matrix), self.calibration)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "features": [asdict(feature) for feature in self.encoder.features],
            "calibration": asdict(self.calibration),
            "info": self.info,
        }

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(directory / BOOSTER_FILE)
        (directory / SPEC_FILE).write_text(json.dumps(self.spec(), indent=1, default=str))
        return directory

    @classmethod
    def load(cls, directory: Path) -> TrainedBundle:
        spec = json.loads((directory / SPEC_FILE).read_text())
        booster = xgb.Booster()
        booster.load_model(directory / BOOSTER_FILE)
        return cls(
            kind=spec["kind"],
            label=spec["label"],
            encoder=Encoder(
                FeatureSpec(
                    name=feature["name"],
                    kind=feature["kind"],
                    categories=tuple(feature["categories"]),
                    default=feature["default"],
                )
                for feature in spec["features"]
            ),
            calibration=Calibration(**spec["calibration"]),
            booster=booster,
            info=spec.get("info", {}),
        )


def calibrated(
    margins: npt.NDArray[np.float64], calibration: Calibration
) -> npt.NDArray[np.float64]:
    logits = calibration.slope * margins + calibration.intercept
    return 1.0 / (1.0 + np.exp(-logits))
