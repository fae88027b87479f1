from django.apps import AppConfig

from sites.signals import site_created


class ConsentConfig(AppConfig):
    name = "consent"

    def ready(self) -> None:
        # Django's place for connecting receivers: the models they use are loaded only now.
        from django.core import checks

        from consent.checks import vendor_list_fresh
        from consent.receivers import site_created_banner_ensure

        checks.register(vendor_list_fresh, "consent")

        site_created.connect(site_created_banner_ensure, dispatch_uid="consent-banner")
