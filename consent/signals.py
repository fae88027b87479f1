"""Signals of the consent app, for the apps above it that keep personal data by consent
(consent imports none of them).

``consent_recorded`` (keyword arguments ``site_public_id``, ``visitor_id``, ``granted``: the
purposes the decision grants) is sent by consent.services.consent_record_create once a decision
is recorded and committed. recs receives it to forget at once the signals of purposes no longer
granted (recs.receivers).
"""

from __future__ import annotations

from django.dispatch import Signal

consent_recorded = Signal()
