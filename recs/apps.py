from django.apps import AppConfig

from consent.signals import consent_recorded


class RecsConfig(AppConfig):
    name = "recs"
    verbose_name = "Recommendations"

    def ready(self) -> None:
        # Django's place for connecting receivers.
        from recs.receivers import consent_recorded_signals_forget

        consent_recorded.connect(consent_recorded_signals_forget, dispatch_uid="recs-forget")
