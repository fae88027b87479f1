"""`manage.py drain` refuses to run without Kafka, saying why."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings


def test_without_kafka_there_is_nothing_to_drain():
    with (
        override_settings(KAFKA_BOOTSTRAP_SERVERS=""),
        pytest.raises(CommandError, match="nothing to drain"),
    ):
        call_command("drain")
