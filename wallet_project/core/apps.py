from django.apps import AppConfig


class CoreConfig(AppConfig):
    """HTTP plumbing: no models (its migrations only hand its former models to their owners)."""

    name = "wallet_project.core"
    label = "core"
    verbose_name = "Core plumbing"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
