"""``python manage.py train ctr|conversion``: train a model on the exported feature mart, log it
to MLflow, register it and promote it to the serving alias if it beats the champion on the same
validation days (analytics.ml.services.model_train). ``--build`` first rebuilds the marts with
dbt and exports them, as the nightly job does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from analytics.ml import services
from analytics.ml.training import MAX_ROUNDS, TASKS, NotEnoughData


class Command(BaseCommand):
    help = "Train the CTR or conversion model; register it and promote it if it wins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=sorted(TASKS))
        parser.add_argument(
            "--marts",
            type=Path,
            default=None,
            help="export folder (default: <NABORIA_VAR_DIR>/marts)",
        )
        parser.add_argument(
            "--build", action="store_true", help="dbt build and export the marts first"
        )
        parser.add_argument("--validation-days", type=int, default=7)
        parser.add_argument("--tune-days", type=int, default=3)
        parser.add_argument(
            "--history-days", type=int, default=None, help="train on the last N days only"
        )
        parser.add_argument("--max-rounds", type=int, default=MAX_ROUNDS)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["build"]:
            self.stdout.write("building the marts (dbt build) and exporting them…")
            rows = services.marts_refresh(out_dir=options["marts"])
            self.stdout.write(f"{rows:,} mart rows exported")
        with tqdm(total=options["max_rounds"], unit="round", disable=None) as bar:

            def on_round(done: int) -> None:
                bar.update(done - bar.n)

            try:
                outcome = services.model_train(
                    kind=options["kind"],
                    marts_dir=options["marts"],
                    history_days=options["history_days"],
                    validation_days=options["validation_days"],
                    tune_days=options["tune_days"],
                    max_rounds=options["max_rounds"],
                    on_round=on_round,
                    on_stage=bar.set_description,
                )
            except NotEnoughData as error:
                raise CommandError(str(error)) from None
        training = outcome.training
        metrics, baseline = training.metrics, training.baseline
        lines = [
            f"{training.task.model_name} v{outcome.version} (run {outcome.run_id}): "
            f"{len(training.split.train):,} train rows at "
            f"{training.train_rows_per_second:,.0f} rows/s, {training.best_iteration + 1} trees",
            f"validation {training.split.validation_days[0]}..{training.split.validation_days[1]} "
            f"({metrics.rows:,} rows): AUC {metrics.auc:.4f}, log loss {metrics.log_loss:.5f}, "
            f"ECE {metrics.ece:.5f}",
            f"prior-rate baseline: AUC {baseline.auc:.4f}, log loss {baseline.log_loss:.5f}, "
            f"ECE {baseline.ece:.5f}",
        ]
        if outcome.champion_metrics is not None:
            champion = outcome.champion_metrics
            lines.append(
                f"champion v{outcome.champion_version} on the same rows: AUC {champion.auc:.4f}, "
                f"log loss {champion.log_loss:.5f}"
            )
        verdict = "PROMOTED" if outcome.decision.promote else "not promoted"
        lines.append(f"{verdict}: {outcome.decision.reason}")
        self.stdout.write("\n".join(lines))
