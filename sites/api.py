"""REST endpoints of the sites app: the sites a caller may read."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import generics, serializers

from sites.models import Organization, Site
from sites.selectors import sites_readable_by


class SiteSerializer(serializers.ModelSerializer[Site]):
    organization: serializers.SlugRelatedField[Organization] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = Site
        fields = [
            "public_id",
            "name",
            "organization",
            "allowed_domains",
            "timezone",
            "retention_days",
            "analytics_enabled",
            "ads_enabled",
            "consent_banner_enabled",
        ]


class SiteListView(generics.ListAPIView[Site]):
    serializer_class = SiteSerializer

    def get_queryset(self) -> QuerySet[Site]:
        return sites_readable_by(principal=self.request.user).select_related("organization")


class SiteDetailView(generics.RetrieveAPIView[Site]):
    serializer_class = SiteSerializer
    lookup_field = "public_id"

    def get_queryset(self) -> QuerySet[Site]:
        return sites_readable_by(principal=self.request.user).select_related("organization")
