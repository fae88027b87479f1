from django.apps import AppConfig
from django.db.models.signals import pre_save

from ads.sanitising import ad_html_sanitise


class AdsConfig(AppConfig):
    name = "ads"

    def ready(self) -> None:
        # On every write of an ad, whoever makes it (the admin, code, the shell, loaddata):
        # what is stored, and so published, is sanitised HTML.
        pre_save.connect(ad_html_sanitise, sender=self.get_model("Ad"), dispatch_uid="ads-html")
