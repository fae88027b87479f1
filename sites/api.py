"""REST endpoints of the sites app: the sites a caller may read; and the error bodies their
OpenAPI schema (and the reports', analytics.api_schema) documents."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, serializers

from sites.models import Organization, Site
from sites.selectors import sites_readable_by


class SiteSerializer(serializers.ModelSerializer[Site]):
    organization: serializers.SlugRelatedField[Organization] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    allowed_domains = serializers.ListField(child=serializers.CharField(), read_only=True)

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
            "recommendations_enabled",
        ]
        read_only_fields = fields  # the API reads sites; the admin edits them


class DetailErrorSerializer(serializers.Serializer[Any]):
    """DRF's error body: 401 and 404 answers."""

    detail = serializers.CharField()


UNAUTHENTICATED = OpenApiResponse(
    DetailErrorSerializer,
    "No credentials, or a token that is invalid, expired or revoked (with a "
    "`WWW-Authenticate: Bearer` header).",
)
# A response header (of the 401s), listed with an operation's parameters.
BEARER_CHALLENGE = OpenApiParameter(
    "WWW-Authenticate",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description='the challenge: Bearer realm="naboria"',
    pattern="^Bearer ",
    required=True,
    response=[401],
)
NOT_ACCEPTABLE = OpenApiResponse(
    DetailErrorSerializer, "The Accept header asks for no media type this operation answers."
)
NOT_FOUND_SITE = OpenApiResponse(
    DetailErrorSerializer, "No such site among the caller's organizations' sites."
)


@extend_schema_view(
    get=extend_schema(
        parameters=[BEARER_CHALLENGE],
        responses={
            200: SiteSerializer(many=True),
            401: UNAUTHENTICATED,
            404: OpenApiResponse(DetailErrorSerializer, "No such page of results."),
            406: NOT_ACCEPTABLE,
        },
    )
)
class SiteListView(generics.ListAPIView[Site]):
    serializer_class = SiteSerializer

    def get_queryset(self) -> QuerySet[Site]:
        return sites_readable_by(principal=self.request.user).select_related("organization")


@extend_schema_view(
    get=extend_schema(
        parameters=[BEARER_CHALLENGE],
        responses={
            200: SiteSerializer,
            401: UNAUTHENTICATED,
            404: NOT_FOUND_SITE,
            406: NOT_ACCEPTABLE,
        },
    )
)
class SiteDetailView(generics.RetrieveAPIView[Site]):
    serializer_class = SiteSerializer
    lookup_field = "public_id"

    def get_queryset(self) -> QuerySet[Site]:
        return sites_readable_by(principal=self.request.user).select_related("organization")


def nullable_as_json_schema(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: the OpenAPI 3.0 ``nullable`` that DRF's own
    schemas still carry (the pagination links) as the ``null`` type of OpenAPI 3.1."""

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        converted = {key: convert(value) for key, value in node.items() if key != "nullable"}
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            converted["type"] = [node["type"], "null"]
        return converted

    converted: dict[str, Any] = convert(result)
    return converted
