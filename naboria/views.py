"""Operational endpoints (health, metrics) and the landing page of a Naboria installation."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ads.models import Ad, AdStatus, Placement
from ads.signing import Delivery, sign_delivery
from analytics.metrics import REALTIME_REGISTRY
from naboria.health import check_dependencies
from naboria.metrics import metrics_token_accepted
from sites.selectors import site_for_demo


@require_GET
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    statuses = check_dependencies()
    failing = [status.name for status in statuses if not status.ok]
    body = {
        "status": "error" if failing else "ok",
        "failing": failing,
        "dependencies": {status.name: status.as_dict() for status in statuses},
    }
    return JsonResponse(body, status=503 if failing else 200)


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_token_accepted(request.headers.get("Authorization", "")):
        return HttpResponse("metrics need Authorization: Bearer <METRICS_TOKEN>\n", status=401)
    # This process's collectors, and the realtime visitors per site (a query, cached 5 s).
    body = generate_latest(REGISTRY) + generate_latest(REALTIME_REGISTRY)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "naboria/home.html")


@require_GET
def demo(request: HttpRequest) -> HttpResponse:
    """A demo shop page embedding the tracker of the demo site, or of ``?site=<public id>``:
    pageviews, a single-page navigation, custom events, links, an ad slot and the banner."""
    site = site_for_demo(public_id=request.GET.get("site"))
    if site is None:
        return HttpResponse(
            "No such site. `python manage.py seed_demo` creates the demo site.\n",
            status=404,
            content_type="text/plain",
        )
    placement = Placement.objects.filter(site=site).order_by("id").first()
    context: dict[str, object] = {"site": site, "placement": placement}
    # The page's own ad element: an ad of the demo placement, rendered by this server, so it
    # carries an impression token like any delivery; each rendering is one impression.
    ad = (
        Ad.objects.filter(campaign__placements=placement, status=AdStatus.ACTIVE)
        .order_by("id")
        .first()
        if placement is not None
        else None
    )
    if placement is not None and ad is not None:
        delivery = Delivery(
            impression=f"demo-{uuid.uuid4().hex}",
            site=site.public_id,
            campaign=ad.campaign_id,
            ad=ad.pk,
            placement=placement.pk,
            creative=ad.kind,
        )
        context.update(impression_id=delivery.impression, impression_token=sign_delivery(delivery))
    return render(request, "naboria/demo.html", context)


@require_GET
def demo_tags(request: HttpRequest) -> HttpResponse:
    """A demo page with blocking markup (docs/tags.md): scripts and an iframe of the page itself
    held back until the purposes they name are granted."""
    site = site_for_demo(public_id=request.GET.get("site"))
    if site is None:
        return HttpResponse("No such site.\n", status=404, content_type="text/plain")
    return render(request, "naboria/demo_tags.html", {"site": site})


@require_GET
@xframe_options_exempt  # it stands in for a third party's widget, which any site may frame
def demo_embed(request: HttpRequest) -> HttpResponse:
    """A stand-in for a third party's embed (a store map), framed by the demo pages' tags."""
    return render(request, "naboria/demo_embed.html")


# A stand-in for a third party's widget script, held back by the demo page's blocking markup.
DEMO_WIDGET_SCRIPT = """\
(window.demoRuns = window.demoRuns || []).push('widget')
document.getElementById('status-widget').textContent = 'loaded and ran'
"""


@require_GET
def demo_widget(request: HttpRequest) -> HttpResponse:
    return HttpResponse(DEMO_WIDGET_SCRIPT, content_type="text/javascript")


@csrf_exempt  # it changes nothing: a write to no resource is a 404, not a CSRF refusal
def api_not_found(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)
