"""ASGI entry point of the web role: ``daphne naboria.asgi:application``.

Serves Django views, the REST API and the admin over HTTP. Before it serves, it checks every
configured backend (NABORIA_STARTUP_CHECKS) so a wrong URL fails at start with one line.
"""

import os

from naboria.config import exit_on_configuration_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "naboria.settings")

with exit_on_configuration_error():
    from channels.routing import ProtocolTypeRouter
    from django.conf import settings
    from django.core.asgi import get_asgi_application

    django_application = get_asgi_application()

    if settings.STARTUP_CHECKS:
        from naboria.health import assert_dependencies_reachable

        assert_dependencies_reachable()

application = ProtocolTypeRouter({"http": django_application})
