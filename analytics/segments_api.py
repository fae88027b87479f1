"""REST API of saved segments: ``/api/v1/sites/<public id>/segments`` (list, create) and
``/api/v1/sites/<public id>/segments/<id>`` (read, delete), for every caller who can read the
site (other sites answer 404). A report applies one with ``segment=<id>``."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.models import Segment
from analytics.reports.query import FILTER_NAMES, MAX_FILTER_LENGTH, InvalidReportQuery
from analytics.selectors import segment_of, segments_of
from analytics.services import segment_create, segment_delete
from sites.api import (
    BEARER_CHALLENGE,
    NOT_ACCEPTABLE,
    NOT_FOUND_SITE,
    UNAUTHENTICATED,
    DetailErrorSerializer,
)
from sites.models import Site
from sites.selectors import sites_readable_by


@extend_schema_field(
    {
        "type": "object",
        "description": "filter name -> value, in the report parameters' syntax "
        "(docs/analytics.md, Filters)",
        "properties": {
            name: {"type": "string", "maxLength": MAX_FILTER_LENGTH} for name in FILTER_NAMES
        },
        "additionalProperties": False,
        "minProperties": 1,
    }
)
class FiltersField(serializers.DictField):
    child = serializers.CharField(allow_blank=True)


class SegmentSerializer(serializers.ModelSerializer[Segment]):
    filters = FiltersField()

    class Meta:
        model = Segment
        fields = ["id", "name", "filters", "created_at"]
        read_only_fields = ["id", "created_at"]


ERROR = inline_serializer("SegmentError", {"error": serializers.CharField()})
# What every segment operation may answer besides its success.
REFUSALS = {
    401: UNAUTHENTICATED,
    404: NOT_FOUND_SITE,
    406: NOT_ACCEPTABLE,
}
# Writes with the admin session need its CSRF token (tokens do not).
CSRF_REFUSED = OpenApiResponse(
    DetailErrorSerializer, "With session authentication, no or a wrong CSRF token."
)
NO_SUCH_SEGMENT = OpenApiResponse(
    DetailErrorSerializer, "No such site among the caller's, or no such segment of the site."
)


def _site(request: Request, public_id: str) -> Site:
    return get_object_or_404(sites_readable_by(principal=request.user), public_id=public_id)


def _segment(request: Request, public_id: str, segment_id: int) -> Segment:
    segment = segment_of(site=_site(request, public_id), segment_id=segment_id)
    if segment is None:
        raise Http404
    return segment


class SegmentListView(APIView):
    @extend_schema(
        parameters=[BEARER_CHALLENGE],
        responses={200: SegmentSerializer(many=True), **REFUSALS},
        tags=["segments"],
    )
    def get(self, request: Request, public_id: str) -> Response:
        segments = segments_of(site=_site(request, public_id))
        return Response(SegmentSerializer(segments, many=True).data)

    @extend_schema(
        request=SegmentSerializer,
        parameters=[BEARER_CHALLENGE],
        responses={
            201: SegmentSerializer,
            400: OpenApiResponse(ERROR, "A name or filter is wrong; the message says which."),
            403: CSRF_REFUSED,
            415: OpenApiResponse(DetailErrorSerializer, "A body that is not JSON or a form."),
            **REFUSALS,
        },
        tags=["segments"],
    )
    def post(self, request: Request, public_id: str) -> Response:
        site = _site(request, public_id)
        try:
            data = request.data
        except ParseError as error:  # a 400 says what is wrong in the shape the schema gives
            raise ValidationError({"error": str(error.detail)}) from None
        body: Any = data if isinstance(data, dict) else {}
        try:
            segment = segment_create(
                site=site, name=body.get("name", ""), filters=body.get("filters")
            )
        except InvalidReportQuery as error:
            raise ValidationError({"error": str(error)}) from None
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)


class SegmentDetailView(APIView):
    @extend_schema(
        parameters=[BEARER_CHALLENGE],
        responses={200: SegmentSerializer, **REFUSALS, 404: NO_SUCH_SEGMENT},
        tags=["segments"],
    )
    def get(self, request: Request, public_id: str, segment_id: int) -> Response:
        return Response(SegmentSerializer(_segment(request, public_id, segment_id)).data)

    @extend_schema(
        parameters=[BEARER_CHALLENGE],
        responses={204: None, 403: CSRF_REFUSED, **REFUSALS, 404: NO_SUCH_SEGMENT},
        tags=["segments"],
    )
    def delete(self, request: Request, public_id: str, segment_id: int) -> Response:
        segment_delete(segment=_segment(request, public_id, segment_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
