"""DRF authentication by organization-scoped API token: ``Authorization: Bearer nab_…``.

The authenticated user is the request's ``request.user`` (an anonymous-like principal carrying
the organization) and ``request.auth`` is the ApiToken, so permissions can scope by
``request.auth.organization``. ``ApiTokenScheme`` describes it in the OpenAPI schema
(drf-spectacular finds the extension when this module is imported, as the REST settings do).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from sites.models import ApiToken, Organization
from sites.selectors import api_token_for_digest
from sites.services import API_TOKEN_PREFIX, api_token_digest, api_token_mark_used


class TokenPrincipal(AnonymousUser):
    """The caller behind an API token: authenticated, member of exactly one organization."""

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.organization: Organization = token.organization

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    def __str__(self) -> str:
        return f"token {self.token.prefix}…"


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme != self.keyword or not credentials.strip().startswith(API_TOKEN_PREFIX):
            return None
        token = api_token_for_digest(digest=api_token_digest(credentials.strip()))
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token.")
        api_token_mark_used(token=token)
        return TokenPrincipal(token), token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="naboria"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The token as an OpenAPI HTTP bearer scheme (``bearerAuth``)."""

    target_class = ApiTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": f"{API_TOKEN_PREFIX}…",
            "description": "An organization's API token (admin: API tokens), sent as "
            f"`Authorization: Bearer {API_TOKEN_PREFIX}…`; it reads that organization's sites.",
        }
