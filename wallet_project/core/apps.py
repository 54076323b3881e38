from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "wallet_project.core"
    label = "core"
    verbose_name = "Core plumbing"
