"""What recommendations do when other apps announce something: connected by
recs.apps.RecsConfig.ready()."""

from __future__ import annotations

import logging
from typing import Any

from naboria.redis_client import RedisError
from recs.services import visitor_signals_forget

logger = logging.getLogger(__name__)


def consent_recorded_signals_forget(
    *, site_public_id: str, visitor_id: str, granted: list[str], **kwargs: Any
) -> None:
    """A decision that does not grant analytics (a refusal, a withdrawal) deletes the
    visitor's visited paths at once, one that does not grant ads their ad signals: they were
    kept by that consent. If Redis does not answer they are still never read without the
    consent, and expire."""
    try:
        visitor_signals_forget(
            site_id=site_public_id,
            bid=visitor_id,
            visits="analytics" not in granted,
            ad_signals="ads" not in granted,
        )
    except RedisError:
        logger.warning("signals of a withdrawn consent not deleted now (site %s)", site_public_id)
