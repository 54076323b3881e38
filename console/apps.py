from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConsoleConfig(AppConfig):
    """The ops console: the dashboard, its sections and charts (templates and static files live here)."""

    default = True
    name = "console"
    verbose_name = "Ops console"


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with the console as its default site: every ``@admin.register`` lands on it."""

    default = False
    default_site = "console.sites.ConsoleSite"
