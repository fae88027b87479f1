"""The CTR model as the ad server uses it: the champion model of the registry, held in this
process, and the batch prediction hook ``choose_ad`` ranks with (see ads.decisioning).

Entry points:
    predictor(slot=, context=)  the ``predict_ctr`` hook for one decision, or None without a
                                model (decisions then draw by weight, as before any training)
    exploration_share()         the epsilon of the epsilon-greedy decision
    refresh()                   ask the registry for the champion now and load it if it changed
    use(bundle)                 serve this model (benchmarks, tests); None serves none
Called by ads.serving.decide for every decision.

Refresh: the first decision of a process, and then one every ADS_MODEL_REFRESH_SECONDS, starts
a background thread that asks the registry which version holds the serving alias and loads it
when it changed; decisions never wait for MLflow, they use the model loaded so far (none at
first: weights). So a promotion reaches every web process within that many seconds.

What a decision knows of the model's features: the ad (campaign, ad, creative type and size),
the placement, the local hour and weekday in the placement's time zone, the country and the
page. The device only with an ads-personalisation grant, as for targeting. The visitor's visit
and history (source, pageviews, returning, earlier impressions and clicks) are unknown to the
ad server: they take the model's defaults (the most frequent value or median in training),
i.e. the model ranks the ads for a typical visitor in this context. That is enough to rank:
within one decision those features are the same for every candidate ad.

An ad the model has never seen (its ad id was not in the training data) gets the mean
prediction of the decision's known ads, so it neither wins nor loses by default; exploration
gives it impressions until the next training learns about it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings

from ads import model_registry
from ads.ctr_model import Matrix, TrainedBundle
from ads.decisioning import placement_zone
from ads.delivery import DeliveryContext, LiveAd, PlacementSlot

logger = logging.getLogger(__name__)
MODEL_NAME = "naboria-ctr"
# The model's features that describe the ad (the rest describe the decision's context).
AD_FEATURES = ("campaign_id", "ad_id", "creative_type", "creative_size")
MAX_CACHED_ADS = 20_000


class _Model:
    """A loaded model with what decisions reuse: each ad's encoded features (ads change only
    when republished, with a new version), so a decision encodes only its context."""

    def __init__(self, bundle: TrainedBundle) -> None:
        self.bundle = bundle
        names = bundle.encoder.names
        self.ad_columns = [names.index(name) for name in AD_FEATURES if name in names]
        self._ads: dict[tuple[int, int], Matrix | None] = {}

    def ad_codes(self, ad: LiveAd) -> Matrix | None:
        """The ad's encoded features, or None for an ad the model never saw."""
        key = (ad.ad_id, ad.version)
        if key not in self._ads:
            if len(self._ads) >= MAX_CACHED_ADS:
                self._ads.clear()  # old versions of republished ads pile up otherwise
            encoder = self.bundle.encoder
            self._ads[key] = (
                encoder.encode_rows([ad_features(ad)])[0, self.ad_columns]
                if encoder.knows("ad_id", ad.ad_id)
                else None
            )
        return self._ads[key]


class _Served:
    """The model this process serves, swapped whole by the refresh thread."""

    def __init__(self) -> None:
        self.model: _Model | None = None
        self.version: str | None = None
        self.checked_at: float | None = None  # monotonic time of the last registry check
        self.lock = threading.Lock()
        self.refreshing = False


_served = _Served()


def exploration_share() -> float:
    return settings.ADS_EXPLORATION_PERCENT / 100.0


def use(bundle: TrainedBundle | None, *, version: str = "local") -> None:
    """Serve ``bundle`` (None: no model) until the registry's champion changes."""
    with _served.lock:
        _served.model = _Model(bundle) if bundle is not None else None
        _served.version = version if bundle is not None else None
        _served.checked_at = time.monotonic()


def refresh() -> str | None:
    """Load the registry's champion if it is not the version served; the version served."""
    current = model_registry.champion(MODEL_NAME)
    if current is None:
        use(None)
        return None
    if current.version != _served.version:
        bundle = model_registry.load_bundle(MODEL_NAME, current.version)
        use(bundle, version=current.version)
        logger.info("serving CTR model v%s", current.version)
    return _served.version


def _refresh_in_background() -> None:
    try:
        refresh()
    except Exception:
        # The registry being away must not stop ad delivery: keep the model we have.
        logger.exception("could not refresh the CTR model; keeping v%s", _served.version)
    finally:
        with _served.lock:
            _served.refreshing = False
            _served.checked_at = time.monotonic()


def _refresh_if_due() -> None:
    checked_at = _served.checked_at
    if checked_at is not None and (
        time.monotonic() - checked_at < settings.ADS_MODEL_REFRESH_SECONDS
    ):
        return
    with _served.lock:
        if _served.refreshing:
            return
        _served.refreshing = True
    threading.Thread(target=_refresh_in_background, name="ctr-model-refresh", daemon=True).start()


def context_features(*, slot: PlacementSlot, context: DeliveryContext) -> dict[str, Any]:
    """The model's features known for every candidate ad of a decision (as the CTR mart spells
    them: see dbt/models/marts/mart_ctr_features.sql)."""
    local: datetime = context.now.astimezone(placement_zone(slot.timezone))
    path = context.path
    features: dict[str, Any] = {
        "placement_id": slot.placement_id,
        "local_hour": local.hour,
        "local_weekday": local.isoweekday(),
        "country": context.country.upper(),
        "page_path": path,
        "page_section": "/" + path.split("/")[1] if path.startswith("/") else "",
        "in_session": 1,
    }
    if context.personalised:
        features["device_type"] = context.device
    return features


def ad_features(ad: LiveAd) -> dict[str, Any]:
    creative = ad.creative
    return {
        "campaign_id": ad.campaign_id,
        "ad_id": ad.ad_id,
        "creative_type": creative.kind,
        "creative_size": creative.size if creative.width and creative.height else "",
    }


class Predictor:
    """Predicted CTR of candidate ads in one decision's context: one batched model call for
    the ads it has not scored yet (a listing asks several times with fewer ads each time)."""

    def __init__(self, model: _Model, shared: dict[str, Any]) -> None:
        self.model = model
        self.context_row = model.bundle.encoder.encode_rows([{}], shared=shared)[0]
        self.known: dict[int, float] = {}  # ad id -> prediction, for ads the model knows
        self.unknown: set[int] = set()

    def __call__(self, ads: Sequence[LiveAd]) -> list[float]:
        model = self.model
        fresh: list[LiveAd] = []
        codes: list[Matrix] = []
        for ad in ads:
            if ad.ad_id in self.known or ad.ad_id in self.unknown:
                continue
            ad_codes = model.ad_codes(ad)
            if ad_codes is None:
                self.unknown.add(ad.ad_id)
            else:
                fresh.append(ad)
                codes.append(ad_codes)
        if fresh:
            matrix = np.tile(self.context_row, (len(fresh), 1))
            matrix[:, model.ad_columns] = np.stack(codes)
            for ad, value in zip(fresh, model.bundle.predict_proba(matrix), strict=True):
                self.known[ad.ad_id] = float(value)
        scored = [self.known[ad.ad_id] for ad in ads if ad.ad_id in self.known]
        neutral = sum(scored) / len(scored) if scored else 1.0
        return [self.known.get(ad.ad_id, neutral) for ad in ads]


def predictor(*, slot: PlacementSlot, context: DeliveryContext) -> Predictor | None:
    _refresh_if_due()
    model = _served.model
    if model is None:
        return None
    return Predictor(model, context_features(slot=slot, context=context))
