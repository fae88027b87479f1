from django.urls import path

from ads import views

urlpatterns = [
    path("listing", views.listing, name="ads-listing"),
    path("vast", views.vast, name="ads-vast"),
    path("click/<str:token>", views.click, name="ads-click"),
    path("track/<str:token>", views.track, name="ads-track"),
]
