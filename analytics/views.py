"""The dashboard page of a site: ``/dashboard/<site public id>/``. The page itself is a
template; the bundle from tracker/src/dashboard reads the REST API (session authentication)
and the realtime stream (analytics.streams). Staff members of the site's organization only."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from ingest import geo
from ingest.tracker_script import built_bundles
from sites.selectors import sites_readable_by


@staff_member_required
def dashboard(request: HttpRequest, public_id: str) -> HttpResponse:
    site = sites_readable_by(principal=request.user).filter(public_id=public_id).first()
    if site is None:
        raise Http404("no such site among yours")
    manifest = built_bundles()
    return render(
        request,
        "analytics/dashboard.html",
        {
            "site": site,
            "script": f"naboria/{manifest['dashboard']}",
            "stylesheet": f"naboria/{manifest['dashboard_css']}",
            "sites": sites_readable_by(principal=request.user).order_by("name"),
            # The notice the geolocation database's licence asks for where its results show.
            "geo_attribution": geo.attribution(),
        },
    )
