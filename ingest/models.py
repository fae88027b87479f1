"""Daily salts for cookieless visitor ids.

Without consent a visitor is ``hash(salt_of_the_day, site, ip, user_agent)``: countable within
a day, unlinkable across days once the salt is gone. Salts live in the database so every web
process of a day agrees; beat deletes them after two days.
"""

from __future__ import annotations

import secrets

from django.db import models


def new_salt() -> str:
    return secrets.token_hex(32)


class DailySalt(models.Model):
    day = models.DateField(unique=True)
    salt = models.CharField(max_length=64, default=new_salt, editable=False)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"salt of {self.day}"
