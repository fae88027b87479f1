"""The known click-probability model the traffic generator draws ad clicks from.

``generate_traffic`` decides whether each generated ad impression is clicked with
``click_probability``, so a CTR model trained on generated data (issue 6/6) can be measured
against the truth: its predictions should approach these probabilities, and its AUC the AUC of
this function on the same impressions.

logit(p) = BASE
         + DEVICE[device]                       (mobile users click more, tablets a bit)
         + (EVENING if 18 <= local hour < 23)   (evening browsing)
         + CAMPAIGN[campaign rank % 3]          (campaigns differ in appeal)
         + (RETURNING if the visitor had an earlier visit)
         + SOURCE[referrer medium]              (search visitors have intent; email readers too)
         + DEPTH * min(pageviews before the ad in the visit, 5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BASE = -4.2
DEVICE = {"desktop": 0.0, "mobile": 0.55, "tablet": 0.25}
EVENING = 0.35
CAMPAIGN = (0.6, 0.0, -0.5)
RETURNING = 0.3
SOURCE = {"search": 0.4, "email": 0.5, "social": 0.1, "referral": 0.0, "direct": -0.1, "paid": 0.3}
DEPTH = 0.12


@dataclass(frozen=True)
class ImpressionFeatures:
    device: str
    local_hour: int
    campaign_rank: int  # 0-based position of the campaign among the site's campaigns
    returning: bool
    medium: str
    pageviews_before: int


def click_probability(features: ImpressionFeatures) -> float:
    logit = (
        BASE
        + DEVICE.get(features.device, 0.0)
        + (EVENING if 18 <= features.local_hour < 23 else 0.0)
        + CAMPAIGN[features.campaign_rank % len(CAMPAIGN)]
        + (RETURNING if features.returning else 0.0)
        + SOURCE.get(features.medium, 0.0)
        + DEPTH * min(features.pageviews_before, 5)
    )
    return 1.0 / (1.0 + math.exp(-logit))
