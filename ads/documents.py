"""MongoDB documents of ad delivery: one per live ad and one per placement, denormalised so a
web process rebuilds its snapshot from two collection scans. Written only by ads.publishing."""

from __future__ import annotations

from mongoengine import DictField, Document, IntField, StringField


class DeliveryAdDocument(Document):
    ad_id = IntField(primary_key=True)
    organization_id = IntField(required=True)
    body = DictField(required=True)  # ads.delivery.LiveAd.to_document()
    meta = {"collection": "ad_delivery", "indexes": ["organization_id"]}


class DeliveryPlacementDocument(Document):
    placement_id = IntField(primary_key=True)
    key = StringField(required=True, unique=True)
    body = DictField(required=True)  # ads.delivery.PlacementSlot fields
    meta = {"collection": "ad_placements"}
