from django.apps import AppConfig


class NaboriaConfig(AppConfig):
    name = "naboria"
    verbose_name = "Naboria"
