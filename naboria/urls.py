"""Root URL configuration: operations endpoints, admin, the REST API and each app's routes."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from analytics import views as analytics_views
from ingest import views as tracker_views
from naboria import views

admin.site.site_header = "Naboria"
admin.site.site_title = "Naboria admin"
admin.site.index_title = "Sites, consent and ads"

urlpatterns = [
    path("", views.home, name="home"),
    path("health", views.health, name="health"),
    path("metrics", views.metrics, name="metrics"),
    path("demo/", views.demo, name="demo"),
    path("demo/tags/", views.demo_tags, name="demo-tags"),
    path("demo/embed/", views.demo_embed, name="demo-embed"),
    path("demo/widget.js", views.demo_widget, name="demo-widget"),
    path("dashboard/<str:public_id>/", analytics_views.dashboard, name="dashboard"),
    path("t/<str:public_id>.js", tracker_views.tracker_loader, name="tracker-loader"),
    path("t/<str:public_id>.json", tracker_views.tracker_config_json, name="tracker-config"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("sites.api_urls")),
    path("api/v1/", include("analytics.api_urls")),
    # Anything else under the API (a segment id that is no number, say) is a JSON 404 like the
    # API's own, not Django's HTML page.
    re_path(r"^api/v1/", views.api_not_found),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
