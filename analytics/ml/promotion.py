"""The promotion rule: when a newly trained model replaces the one the ad server uses.

A candidate is promoted to the serving alias only if, on its validation days (never used to fit
either model):

1. its log loss is below the prior-rate baseline's (it has learnt something), and
2. there is no champion, or its log loss is strictly below the champion's on the same rows.

Log loss rather than AUC decides because serving multiplies the predicted probability by the
ad's weight: calibration matters as much as order, and log loss scores both (AUC only the
order). A tie keeps the champion, so retraining on unchanged data does not churn versions.
AUC and calibration error are logged beside it for people.

Entry point: decide(candidate=, baseline=, champion=), used by analytics.ml.services.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.ml.metrics import Metrics


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(*, candidate: Metrics, baseline: Metrics, champion: Metrics | None) -> Decision:
    if not candidate.log_loss < baseline.log_loss:
        return Decision(
            False,
            f"log loss {candidate.log_loss:.5f} does not beat the prior-rate baseline's "
            f"{baseline.log_loss:.5f}",
        )
    if champion is None:
        return Decision(True, "beats the baseline and there is no champion")
    if candidate.log_loss < champion.log_loss:
        return Decision(
            True,
            f"log loss {candidate.log_loss:.5f} < champion's {champion.log_loss:.5f} "
            "on the same validation rows",
        )
    return Decision(
        False,
        f"log loss {candidate.log_loss:.5f} >= champion's {champion.log_loss:.5f} "
        "on the same validation rows",
    )
