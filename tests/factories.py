"""factory_boy factories for the models of the test suite."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from sites.models import Organization, Site, SiteSecret


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Site {n}")
    allowed_domains = factory.LazyFunction(lambda: ["example.com"])
    # Sites of the suite trust the consent their pages send (a CMP of their own) unless a test
    # turns Naboria's banner on, which makes the server check claims against recorded decisions.
    consent_banner_enabled = False
    secret = factory.RelatedFactory(
        "tests.factories.SiteSecretFactory", factory_related_name="site"
    )


class SiteSecretFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SiteSecret
