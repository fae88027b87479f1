from django.urls import path

from sites.api import SiteDetailView, SiteListView

urlpatterns = [
    path("sites/", SiteListView.as_view(), name="api-site-list"),
    path("sites/<str:public_id>/", SiteDetailView.as_view(), name="api-site-detail"),
]
