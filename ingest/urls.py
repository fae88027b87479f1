from django.urls import path

from ingest import views

urlpatterns = [
    path("init", views.init, name="ingest-init"),
    path("collect", views.collect, name="ingest-collect"),
    path("ad-event", views.ad_event, name="ingest-ad-event"),
    path("p.gif", views.pixel, name="ingest-pixel"),
]
