from django.apps import AppConfig

from sites.signals import site_created


class ConsentConfig(AppConfig):
    name = "consent"

    def ready(self) -> None:
        # Django's place for connecting receivers: the models they use are loaded only now.
        from consent.receivers import site_created_banner_ensure

        site_created.connect(site_created_banner_ensure, dispatch_uid="consent-banner")
