"""What the consent app does when other apps announce something: connected by
consent.apps.ConsentConfig.ready()."""

from __future__ import annotations

from typing import Any

from consent.services import consent_banner_ensure
from sites.models import Site


def site_created_banner_ensure(*, site: Site, **kwargs: Any) -> None:
    """A new site gets the default banner (the standard purposes and English texts), so it can
    turn Naboria's banner on without further setup."""
    consent_banner_ensure(site=site)
