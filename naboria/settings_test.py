"""Settings for the test suite: the production settings with test-only defaults.

Unless the caller says otherwise (``scripts/test_services.py`` points the backends at real
services), tests keep their files in a fresh temporary folder and their ClickHouse tables in
a database of their own, so they never touch a developer's ``var/``.
"""

import os
import tempfile

os.environ.setdefault("NABORIA_VAR_DIR", tempfile.mkdtemp(prefix="naboria-test-"))
os.environ.setdefault("CLICKHOUSE_DATABASE", "naboria_test")

from naboria.settings import *  # noqa: F403

# Tests that need a backend say so with a marker; nothing is probed at import time.
STARTUP_CHECKS = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
# Tests run their jobs when they mean to, never from a background thread of the test server.
EMBEDDED_BEAT = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Whitenoise warns about a missing STATIC_ROOT; tests never collect static files into it.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
# Static files (the tracker bundles) are served from where they are built, not collected.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
