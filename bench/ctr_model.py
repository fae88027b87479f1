"""CTR model benchmark (issue 6/6): the whole ML path on generated traffic whose click
probabilities are known, in one process on the embedded profile (chdb, SQLite, a local MLflow
store), in a temporary folder:

    .venv/bin/python bench/ctr_model.py                 # --visitors 100000 --days 30

1. a site with CAMPAIGNS campaigns of ADS_PER_CAMPAIGN image ads on two placements (Django);
   traffic from the generator (analytics.traffic_generator), bulk-loaded into ClickHouse; the
   true click probability of every impression is kept (analytics.click_model);
2. ``dbt build`` and the Parquet export of the marts (analytics.ml.services.marts_refresh);
3. training, registration and promotion (analytics.ml.services.model_train): training rows/s;
4. on the validation days: the model's AUC next to the AUC of the true probabilities on the
   same impressions (the achievable ceiling; target: within 0.02);
5. a simulated serving run over the validation impressions: each impression's visitor and page
   get an ad chosen among all the inventory's ads by ``choose_ad``, once by weight alone and
   once ranked by the model (ads.ranking, with the configured exploration share); the click is
   drawn from the true model for the chosen ad. The CTR lift of model ranking is reported on
   drawn clicks and on expected clicks (the sum of true probabilities, without draw noise);
6. decision latency in process with the model: ``choose_ad`` over 200 live ads (the inventory's
   ads all finalists, plus lower-priority ones that are outranked), the predictor included.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import percentile
from scripts.test_services import embedded_environment

TIMEZONE = "Europe/Paris"
CAMPAIGNS = 12
ADS_PER_CAMPAIGN = 4
LIVE_ADS = 200


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    options = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="naboria-ctr-bench-"))
    os.environ.update(embedded_environment(data_dir))
    os.environ["LOG_LEVEL"] = "WARNING"

    import django

    django.setup()
    import numpy as np
    import pandas as pd
    from django.core.management import call_command

    from ads import ranking
    from ads.decisioning import choose_ad
    from ads.delivery import Creative, DeliveryContext, LiveAd, PlacementSlot
    from ads.models import Ad, Advertiser, Campaign, CampaignStatus, Placement
    from analytics import clickhouse_migrations
    from analytics.click_model import ImpressionFeatures, click_probability
    from analytics.ml import services
    from analytics.ml.metrics import auc
    from analytics.traffic_generator import AdInventory, Visit, bulk_load, generate_visits
    from sites.models import Organization, Site

    call_command("migrate", verbosity=0)
    clickhouse_migrations.apply_pending()
    organization = Organization.objects.create(name="Bench", slug="bench")
    site = Site.objects.create(
        organization=organization,
        name="Shop",
        allowed_domains=["shop.example"],
        timezone=TIMEZONE,
        retention_days=3650,
    )
    placements = [
        Placement.objects.create(site=site, name=name, sizes=["300x250"]) for name in ("a", "b")
    ]
    advertiser = Advertiser.objects.create(organization=organization, name="Advertiser")
    ads = []
    for number in range(CAMPAIGNS):
        campaign = Campaign.objects.create(
            advertiser=advertiser,
            name=f"Campaign {number}",
            status=CampaignStatus.ACTIVE,
            weight=10,
            starts_at=datetime.now(UTC) - timedelta(days=options.days + 1),
        )
        ads += [
            Ad.objects.create(
                campaign=campaign,
                name=f"Ad {number}.{index}",
                width=300,
                height=250,
                image_url="https://cdn.example/ad.png",
                click_url="https://advertiser.example/",
            )
            for index in range(ADS_PER_CAMPAIGN)
        ]
    inventory = AdInventory(
        tuple((ad.campaign_id, ad.pk, placement.pk) for ad in ads for placement in placements)
    )
    rank = {campaign: index for index, campaign in enumerate(inventory.campaigns)}

    # What the generator knew of each impression, to compute the true probability of any ad.
    truth: dict[str, tuple[float, ImpressionFeatures]] = {}
    zone = ZoneInfo(TIMEZONE)

    def remembered(visits: Iterator[Visit]) -> Iterator[Visit]:
        seen: set[str] = set()
        for visit in visits:
            returning = visit.visitor in seen
            seen.add(visit.visitor)
            pageviews = [event.at for event in visit.events if event.kind == "pageview"]
            for view in visit.ads:
                features = ImpressionFeatures(
                    device=visit.device.kind,
                    local_hour=view.at.astimezone(zone).hour,
                    campaign_rank=rank[view.campaign],
                    returning=returning,
                    medium=visit.source.medium,
                    pageviews_before=sum(at <= view.at for at in pageviews) - 1,
                )
                # The features are rebuilt right: they give the generator's own probability.
                assert abs(click_probability(features) - view.probability) < 1e-12
                truth[view.impression] = (view.probability, features)
            yield visit

    lines = [f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}"]
    started = time.perf_counter()
    visits = generate_visits(
        days=options.days,
        visitors=options.visitors,
        timezone=TIMEZONE,
        inventory=inventory,
        seed=options.seed,
    )
    page_rows, ad_rows = bulk_load(
        site_id=site.public_id, retention_days=3650, visits=remembered(visits), batch_rows=200_000
    )
    lines.append(
        f"traffic: {options.visitors:,} visitors over {options.days} days, {page_rows:,} page "
        f"events and {ad_rows:,} ad events ({len(truth):,} impressions, {len(ads)} ads of "
        f"{CAMPAIGNS} campaigns); generated and loaded in {time.perf_counter() - started:.0f} s"
    )
    print(lines[-1], flush=True)

    started = time.perf_counter()
    marts_dir = data_dir / "marts"
    exported = services.marts_refresh(out_dir=marts_dir)
    lines.append(
        f"dbt build + Parquet export: {exported:,} mart rows in {time.perf_counter() - started:.0f} s"
    )
    print(lines[-1], flush=True)

    outcome = services.model_train(kind="ctr", marts_dir=marts_dir)
    training = outcome.training
    lines.append(
        f"training: {len(training.split.train):,} train / {len(training.split.tune):,} tune / "
        f"{training.metrics.rows:,} validation rows, {training.best_iteration + 1} trees; "
        f"XGBoost fit {training.fit_seconds:.1f} s = {training.train_rows_per_second:,.0f} "
        f"train rows/s; load + fit + calibrate + evaluate {training.total_seconds:.1f} s; "
        f"registered as v{outcome.version}, {outcome.decision.reason}"
    )
    print(lines[-1], flush=True)

    # The validation days again, with impression ids, to line them up with the truth.
    first_day, last_day = training.split.validation_days
    mart = pd.read_parquet(marts_dir / "mart_ctr_features")
    days = pd.to_datetime(mart["event_date"]).dt.date
    validation = mart[((days >= first_day) & (days <= last_day)).to_numpy()].reset_index(drop=True)
    validation = validation[validation["impression_id"].isin(truth)].reset_index(drop=True)
    bundle = training.bundle
    predicted = bundle.predict_proba(bundle.encoder.encode_frame(validation))
    labels = validation["clicked"].to_numpy()
    true_p = np.array([truth[impression][0] for impression in validation["impression_id"]])
    model_auc, true_auc = auc(labels, predicted), auc(labels, true_p)
    lines.append(
        f"validation ({first_day}..{last_day}, {len(validation):,} impressions): model AUC "
        f"{model_auc:.4f}, true-probability AUC {true_auc:.4f}, gap {true_auc - model_auc:.4f}; "
        f"log loss {training.metrics.log_loss:.5f} vs prior rate {training.baseline.log_loss:.5f}; "
        f"ECE {training.metrics.ece:.5f}"
    )
    print(lines[-1], flush=True)

    # Simulated serving over the validation impressions.
    start = datetime.now(UTC) - timedelta(days=options.days + 1)

    def live_ad(*, ad_id: int, campaign_id: int, priority: int) -> LiveAd:
        """A 300x250 image ad of the benchmark's advertiser, live on its site since the start."""
        return LiveAd(
            ad_id=ad_id,
            campaign_id=campaign_id,
            advertiser_id=advertiser.pk,
            organization_id=organization.pk,
            site_ids=frozenset({site.pk}),
            priority=priority,
            weight=10,
            starts_at=start,
            ends_at=None,
            creative=Creative(kind="image", width=300, height=250),
        )

    live = {ad.pk: live_ad(ad_id=ad.pk, campaign_id=ad.campaign_id, priority=5) for ad in ads}
    candidates = list(live.values())
    slots = {
        placement.pk: PlacementSlot(
            placement_id=placement.pk,
            site_id=site.pk,
            key=placement.key,
            sizes=frozenset({"300x250"}),
            formats=frozenset(),
            timezone=TIMEZONE,
        )
        for placement in placements
    }
    ranking.use(bundle, version=outcome.version)
    exploration = ranking.exploration_share()
    results: dict[str, list[float]] = {"weights": [0, 0, 0], "model": [0, 0, 0]}
    picks_rng = random.Random(options.seed)  # noqa: S311 (simulation)
    clicks_rng = random.Random(options.seed + 1)  # noqa: S311 (simulation)
    for row in validation.itertuples(index=False):
        slot = slots[int(row.placement_id)]
        context = DeliveryContext(
            site_id=site.pk,
            path=str(row.page_path),
            country=str(row.country),
            device=str(row.device_type),
            now=pd.Timestamp(row.impression_at).to_pydatetime(),
            # The generated visitors gave no consent: the device must not steer the choice.
            personalised=False,
        )
        features = truth[str(row.impression_id)][1]
        draw = clicks_rng.random()
        for name in results:
            predict = ranking.predictor(slot=slot, context=context) if name == "model" else None
            chosen = choose_ad(
                ads=candidates,
                slot=slot,
                context=context,
                delivery={},
                rng=picks_rng,
                predict_ctr=predict,
                exploration=exploration,
            )
            assert chosen is not None
            probability = click_probability(
                ImpressionFeatures(
                    device=features.device,
                    local_hour=features.local_hour,
                    campaign_rank=rank[chosen.campaign_id],
                    returning=features.returning,
                    medium=features.medium,
                    pageviews_before=features.pageviews_before,
                )
            )
            totals = results[name]
            totals[0] += 1
            totals[1] += draw < probability  # the same draw for both: paired comparison
            totals[2] += probability
    weights_ctr, model_ctr = (results[name][1] / results[name][0] for name in results)
    weights_expected, model_expected = (results[name][2] / results[name][0] for name in results)
    lines.append(
        f"simulated serving over {results['model'][0]:,} impressions ({len(candidates)} "
        f"candidate ads each, exploration {exploration:.0%}): CTR by weight {weights_ctr:.4%}, "
        f"ranked by the model {model_ctr:.4%}, lift {model_ctr / weights_ctr - 1:+.1%}; "
        f"expected CTR {weights_expected:.4%} -> {model_expected:.4%}, lift "
        f"{model_expected / weights_expected - 1:+.1%}"
    )
    print(lines[-1], flush=True)

    # Decision latency with the model: 200 live ads, the inventory's as finalists.
    filler = [
        live_ad(ad_id=1_000_000 + number, campaign_id=1_000_000 + number // 4, priority=1)
        for number in range(LIVE_ADS - len(candidates))
    ]
    every_ad = [*filler, *candidates]
    sample = validation.sample(n=min(20_000, len(validation)), random_state=1)
    contexts = [
        (
            slots[int(row.placement_id)],
            DeliveryContext(
                site_id=site.pk,
                path=str(row.page_path),
                country=str(row.country),
                device=str(row.device_type),
                now=pd.Timestamp(row.impression_at).to_pydatetime(),
                personalised=True,
            ),
        )
        for row in sample.itertuples(index=False)
    ]
    timings: dict[str, list[float]] = {"weights": [], "model": []}
    for slot, context in contexts:
        for name, samples in timings.items():
            began = time.perf_counter()
            predict = ranking.predictor(slot=slot, context=context) if name == "model" else None
            choose_ad(
                ads=every_ad,
                slot=slot,
                context=context,
                delivery={},
                rng=picks_rng,
                predict_ctr=predict,
                exploration=exploration,
            )
            samples.append(time.perf_counter() - began)
    for name, samples in timings.items():
        lines.append(
            f"decision over {len(every_ad)} live ads ({len(candidates)} finalists), "
            f"{'ranked by the model' if name == 'model' else 'weights only'}: "
            f"p50 {percentile(samples, 0.5) * 1e6:.0f} µs, p99 {percentile(samples, 0.99) * 1e6:.0f} µs "
            f"over {len(samples):,} decisions (target p99 < 2 ms)"
        )
        print(lines[-1], flush=True)
    print("\n" + "\n".join(f"- {line}" for line in lines))


if __name__ == "__main__":
    main()
