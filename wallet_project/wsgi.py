import os

from django.core.wsgi import get_wsgi_application

from wallet_project.core.telemetry import configure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings.base")
# Before the application loads its middleware: the Django instrumentation adds its own in front.
configure()
application = get_wsgi_application()

# Gunicorn runs no system checks: the ones that forbid serving are enforced here, in every worker.
from wallet_project.core.checks import ensure_safe_to_serve  # noqa: E402 - needs the app registry

ensure_safe_to_serve()
