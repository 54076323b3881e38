from django.apps import AppConfig
from django.db.backends.signals import connection_created


class CurrenciesConfig(AppConfig):
    name = "currencies"

    def ready(self) -> None:
        from currencies.money_field import register_sqlite_functions

        # Every SQLite connection gets the exact money aggregate the money field's sums use.
        connection_created.connect(register_sqlite_functions, dispatch_uid="currencies.money_sum")
