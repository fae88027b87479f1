"""The CTR model end to end on generated traffic (no ClickHouse: the mart-shaped table is made
from the traffic generator by tests/ml_data.py and laid out as the Parquet export): training
beats the prior rate and nears the true click model, MLflow logging and registration, the
promotion rule over real models, ``manage.py train``, and the ad server's use of the champion
(ranking, refresh, fallback to weights)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.test import override_settings

from ads import model_registry, ranking
from ads.ctr_model import TrainedBundle
from ads.decisioning import choose_ad
from ads.delivery import Creative, DeliveryContext, LiveAd, PlacementSlot
from analytics.ml import services
from analytics.ml.metrics import auc
from analytics.ml.training import TASKS, Training, fit
from tests.ml_data import INVENTORY, conversion_frame, ctr_frame, write_export

SMALL = {"validation_days": 4, "tune_days": 2}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return ctr_frame(visitors=8000, days=16)


@pytest.fixture(scope="module")
def trained(frame: pd.DataFrame) -> Training:
    return fit(task=TASKS["ctr"], frame=frame, **SMALL)


@pytest.fixture
def mlflow_store(tmp_path: Path) -> Iterator[Path]:
    """A tracking and registry store of this test's own."""
    with override_settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        MLFLOW_ARTIFACT_ROOT=str(tmp_path / "mlruns"),
    ):
        yield tmp_path
    ranking.use(None)


def test_training_beats_the_prior_rate_and_nears_the_true_click_model(frame, trained):
    split = trained.split
    assert split.train_days[1] < split.tune_days[0] <= split.tune_days[1] < split.validation_days[0]
    assert trained.metrics.log_loss < trained.baseline.log_loss
    assert trained.metrics.auc > 0.6
    assert trained.baseline.auc == 0.5
    # The ceiling: the probabilities the generator drew the clicks from, on the same rows.
    truth = frame.set_index("impression_id").loc[
        frame.loc[split.validation.index, "impression_id"], "p"
    ]
    true_auc = auc(trained.validation_labels(), truth.to_numpy())
    assert trained.metrics.auc > true_auc - 0.05
    assert trained.metrics.ece < 0.02
    assert trained.importance["campaign_id"]["gain"] > 0


def test_a_saved_bundle_predicts_the_same_and_serving_rows_encode_as_training_rows(
    trained, tmp_path
):
    bundle = trained.bundle
    validation = trained.split.validation.head(50)
    loaded = TrainedBundle.load(bundle.save(tmp_path / "bundle"))
    expected = bundle.predict_proba(bundle.encoder.encode_frame(validation))
    np.testing.assert_allclose(
        loaded.predict_proba(loaded.encoder.encode_frame(validation)), expected
    )
    records = validation[bundle.encoder.names].to_dict("records")
    from_rows = bundle.encoder.encode_rows(records[1:], shared=records[0])
    np.testing.assert_array_equal(from_rows, bundle.encoder.encode_frame(validation.iloc[1:]))
    # A value never seen in training, or none at all, is missing.
    odd = bundle.encoder.encode_rows([{"page_path": "/never-seen", "country": None}])
    names = bundle.encoder.names
    assert np.isnan(odd[0, names.index("page_path")])
    assert np.isnan(odd[0, names.index("country")])


def champion_version() -> str:
    current = model_registry.champion("naboria-ctr")
    assert current is not None
    return current.version


def test_train_registers_every_model_and_promotes_only_better_ones(frame, mlflow_store, capsys):
    marts = write_export(frame, out_dir=mlflow_store / "marts")
    # One stump: better than the prior rate, worse than a full model.
    weak = {"max_depth": 1}
    first = services.model_train(kind="ctr", marts_dir=marts, params=weak, max_rounds=1, **SMALL)
    assert first.decision.promote
    assert champion_version() == first.version

    call_command(
        "train", "ctr", "--marts", str(marts), "--validation-days", "4", "--tune-days", "2"
    )
    output = capsys.readouterr().out
    assert "PROMOTED" in output
    assert "prior-rate baseline" in output
    better = champion_version()
    assert better != first.version

    worse = services.model_train(kind="ctr", marts_dir=marts, params=weak, max_rounds=1, **SMALL)
    assert not worse.decision.promote
    assert worse.champion_version == better
    assert worse.champion_metrics is not None
    assert worse.training.metrics.log_loss >= worse.champion_metrics.log_loss
    assert champion_version() == better

    # What MLflow holds: the run's metrics and importance, and a pyfunc model with its
    # signature that predicts calibrated probabilities from the mart's columns.
    import mlflow

    run = mlflow.get_run(worse.run_id)
    assert {
        "val_auc",
        "val_log_loss",
        "val_ece",
        "baseline_log_loss",
        "champion_val_log_loss",
    } <= set(run.data.metrics)
    assert "feature_importance.json" in {
        item.path for item in mlflow.MlflowClient().list_artifacts(worse.run_id)
    }
    model = mlflow.pyfunc.load_model("models:/naboria-ctr@champion")
    assert {"campaign_id", "page_path"} <= set(model.metadata.get_input_schema().input_names())
    rows = worse.training.split.validation.head(20)[worse.training.bundle.encoder.names]
    # The signature declares ClickHouse's unsigned ids as signed 64-bit integers.
    rows = rows.astype(dict.fromkeys(["campaign_id", "ad_id", "placement_id"], "int64"))
    served = model_registry.load_bundle("naboria-ctr", better)
    np.testing.assert_allclose(
        np.asarray(model.predict(rows)), served.predict_proba(served.encoder.encode_frame(rows))
    )


NOW = datetime(2026, 11, 19, 19, 30, tzinfo=UTC)  # evening in Paris


def inventory_ads() -> list[LiveAd]:
    return [
        LiveAd(
            ad_id=ad_id,
            campaign_id=campaign_id,
            advertiser_id=1,
            organization_id=1,
            site_ids=frozenset({1}),
            priority=1,
            weight=1,
            starts_at=NOW - timedelta(days=30),
            ends_at=None,
            creative=Creative(kind="image", width=300, height=250),
        )
        for campaign_id, ad_id, _ in INVENTORY.triples
    ]


SLOT = PlacementSlot(
    placement_id=1,
    site_id=1,
    key="k",
    sizes=frozenset(),
    formats=frozenset(),
    timezone="Europe/Paris",
)


def context(**fields: Any) -> DeliveryContext:
    values: dict[str, Any] = {
        "site_id": 1,
        "path": "/products/3",
        "country": "FR",
        "device": "mobile",
        "now": NOW,
        "personalised": True,
    }
    return DeliveryContext(**{**values, **fields})


def predict(ads: list[LiveAd], decision_context: DeliveryContext) -> list[float]:
    predictor = ranking.predictor(slot=SLOT, context=decision_context)
    assert predictor is not None
    return predictor(ads)


def decisions(ads: list[LiveAd], *, exploration: float, count: int = 2000) -> Counter[int]:
    rng = random.Random(5)  # noqa: S311 (simulated decisions)
    chosen: Counter[int] = Counter()
    for _ in range(count):
        predict = ranking.predictor(slot=SLOT, context=context())
        ad = choose_ad(
            ads=ads,
            slot=SLOT,
            context=context(),
            delivery={},
            rng=rng,
            predict_ctr=predict,
            exploration=exploration,
        )
        assert ad is not None
        chosen[ad.campaign_id] += 1
    return chosen


def test_serving_ranks_by_the_model_and_falls_back_to_weights_without_one(trained):
    ads = inventory_ads()
    ranking.use(trained.bundle)
    try:
        predictions = predict(ads, context())
        by_campaign = {ad.campaign_id: p for ad, p in zip(ads, predictions, strict=True)}
        # The true model's campaign effects: the first campaign +0.6, the third -0.5.
        assert by_campaign[1] > by_campaign[2] > by_campaign[3]
        assert decisions(ads, exploration=0.0) == Counter({1: 2000})
        explored = decisions(ads, exploration=0.3)
        # 70 % exploit (campaign 1), 30 % drawn by equal weights over the three campaigns
        # (a campaign's weight is its share, whatever its number of ads).
        assert explored[1] / 2000 == pytest.approx(0.7 + 0.3 / 3, abs=0.03)
        assert explored[3] / 2000 == pytest.approx(0.3 / 3, abs=0.03)
    finally:
        ranking.use(None)
    assert ranking.predictor(slot=SLOT, context=context()) is None
    fallback = decisions(ads, exploration=0.0)
    assert fallback[3] / 2000 == pytest.approx(1 / 3, abs=0.04)


def test_without_consent_the_device_does_not_steer_the_prediction(trained):
    ranking.use(trained.bundle)
    try:
        ads = inventory_ads()
        anonymous = [
            predict(ads, context(device=device, personalised=False))
            for device in ("mobile", "desktop")
        ]
        personal = [predict(ads, context(device=device)) for device in ("mobile", "desktop")]
    finally:
        ranking.use(None)
    assert anonymous[0] == anonymous[1]
    assert personal[0] != personal[1]


def test_an_ad_the_model_never_saw_ranks_as_the_mean_of_the_others(trained):
    ads = inventory_ads()
    newcomer = LiveAd(**{**{f: getattr(ads[0], f) for f in ads[0].__slots__}, "ad_id": 999})
    ranking.use(trained.bundle)
    try:
        predictions = predict([*ads, newcomer], context())
    finally:
        ranking.use(None)
    assert predictions[-1] == pytest.approx(sum(predictions[:-1]) / len(ads))


def test_refresh_serves_the_registry_champion(frame, mlflow_store):
    assert ranking.refresh() is None
    # Before anything was registered a web process's refresh neither creates the registry
    # nor runs MLflow's migrations (bench/ad_delivery.py, run 5).
    assert not (mlflow_store / "mlflow.db").exists()
    marts = write_export(frame, out_dir=mlflow_store / "marts")
    outcome = services.model_train(kind="ctr", marts_dir=marts, max_rounds=30, **SMALL)
    assert outcome.decision.promote
    assert ranking.refresh() == outcome.version
    assert ranking.predictor(slot=SLOT, context=context()) is not None


def test_the_training_task_skips_without_an_export(tmp_path):
    from analytics.tasks import train_model

    with override_settings(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}"):
        result = train_model.apply(args=("ctr",)).get()
    assert "skipped" in result
    assert "export_marts" in result["skipped"]


def test_the_conversion_model_trains_on_its_mart_and_is_registered_apart(mlflow_store):
    visits = conversion_frame(visitors=20000, days=16)
    marts = write_export(visits, out_dir=mlflow_store / "marts", mart="mart_conversion_features")
    outcome = services.model_train(kind="conversion", marts_dir=marts, **SMALL)
    training = outcome.training
    assert training.bundle.label == "converted"
    assert "entry_page" in training.bundle.encoder.names
    assert "session_pageviews" not in training.bundle.encoder.names  # an outcome, not a feature
    assert training.metrics.log_loss < training.baseline.log_loss
    assert outcome.decision.promote
    current = model_registry.champion("naboria-conversion")
    assert current is not None
    assert current.version == outcome.version
    assert model_registry.champion("naboria-ctr") is None


@override_settings(ADS_EXPLORATION_PERCENT=25)
def test_exploration_share_comes_from_the_settings():
    assert ranking.exploration_share() == 0.25
