"""Writes of the tag manager: creating a tag through the same checks as the admin, and the
demo site's tags (naboria's seed_demo)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from sites.models import Site
from tags.models import Tag, TagTemplate

# A chat button standing in for a third-party widget: what a script that ran leaves behind
# (the button) stays after withdrawal, so the demo reloads the page then.
DEMO_CHAT_CODE = """\
var button = document.createElement('button')
button.id = 'demo-chat'
button.type = 'button'
button.textContent = 'Chat with us (a demo tag)'
button.style.cssText = 'position:fixed;right:1rem;bottom:1rem;padding:.6rem 1rem;border-radius:2rem'
document.body.appendChild(button)
"""


def tag_create(*, site: Site, name: str, template: str, purposes: list[str], **fields: Any) -> Tag:
    """A new tag, checked as the admin checks it (``Tag.clean``); ValidationError if invalid."""
    tag = Tag(
        site=site, name=name, template=template, purposes=list(dict.fromkeys(purposes)), **fields
    )
    tag.full_clean()
    tag.save()
    return tag


def demo_tags_ensure(*, site: Site) -> list[Tag]:
    """The demo site's tags, created once: a chat widget (custom script, analytics) and a
    store map (iframe, ads), shown on /demo/ once their purpose is granted."""
    demo: list[dict[str, Any]] = [
        {
            "name": "Demo chat widget",
            "template": TagTemplate.SCRIPT,
            "purposes": ["analytics"],
            "code": DEMO_CHAT_CODE,
            "reload_on_withdrawal": True,
        },
        {
            "name": "Demo store map",
            "template": TagTemplate.IFRAME,
            "purposes": ["ads"],
            "url": "/demo/embed/",
            "title": "Store map (a demo third-party embed)",
            "container": "demo-widget",
            "width": 320,
            "height": 160,
        },
    ]
    with transaction.atomic():
        existing = {tag.name: tag for tag in Tag.objects.filter(site=site)}
        return [existing.get(item["name"]) or tag_create(site=site, **item) for item in demo]
