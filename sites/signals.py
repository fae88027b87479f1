"""Signals of the sites app, for the apps above it that attach something to a site (sites
imports no other app).

``site_created`` (keyword argument ``site``) is sent when a site is created by
sites.services.site_create or in the admin, inside the creating transaction, after its first
secret exists. consent receives it to give the site its default banner (consent.receivers).
"""

from __future__ import annotations

from django.dispatch import Signal

site_created = Signal()
