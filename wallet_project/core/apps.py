from django.apps import AppConfig
from django.db.backends.signals import connection_created


class CoreConfig(AppConfig):
    name = "wallet_project.core"
    label = "core"
    verbose_name = "Core plumbing"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
        from .money_field import register_sqlite_functions

        connection_created.connect(register_sqlite_functions, dispatch_uid="core.money_sum")
