"""Naboria project package: settings, URLs, the ASGI and Celery apps, and the infrastructure
client modules (clickhouse, kafka_client, mongo) that are the only importers of their drivers."""

from naboria.celery import app as celery_app

__all__ = ["celery_app"]
