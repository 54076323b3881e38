from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    label = "events"
    verbose_name = "Events (outbox, relay, consumer)"

    def ready(self) -> None:
        from events.metrics import register_collectors

        register_collectors()
