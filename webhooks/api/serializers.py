from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from wallet_project.core.fields import StrictCharField, StrictSerializer
from wallet_project.core.pagination import ListPaginationOut, PageFilter
from wallet_project.core.params import ChoiceQuery
from webhooks import routing
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.targets import MAX_URL_LENGTH

MAX_EVENT_TYPES = 32


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false and nothing else (DRF's BooleanField takes "yes", 1 and "on")."""

    def to_internal_value(self, data: object) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class EventTypesField(serializers.ListField):
    """Event types, ``<family>.*`` or ``*``: those a user may receive, or (staff) every type."""

    def __init__(self, **kwargs):
        super().__init__(
            child=StrictCharField(max_length=64),
            min_length=1,
            max_length=MAX_EVENT_TYPES,
            help_text=(
                "What to receive. Users: "
                + ", ".join(routing.subscription_choices(staff=False))
                + ". Staff also: "
                + ", ".join(
                    sorted(
                        set(routing.subscription_choices(staff=True)) - set(routing.subscription_choices(staff=False))
                    )
                )
            ),
            **kwargs,
        )

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        staff = bool(self.context.get("staff"))
        allowed = routing.subscription_choices(staff=staff)
        unknown = [value for value in values if value not in allowed]
        if unknown:
            raise serializers.ValidationError(
                f"unknown or not allowed event type(s): {', '.join(unknown)}; allowed: {', '.join(allowed)}"
            )
        return values


class WebhookCreateIn(StrictSerializer):
    url = StrictCharField(
        max_length=MAX_URL_LENGTH,
        trim_whitespace=False,
        help_text="https://… on a public address (http and private addresses only where WEBHOOK_ALLOW_PRIVATE_TARGETS)",
    )
    event_types = EventTypesField()
    description = StrictCharField(required=False, allow_blank=True, max_length=256, default="")


class WebhookUpdateIn(StrictSerializer):
    url = StrictCharField(required=False, max_length=MAX_URL_LENGTH, trim_whitespace=False)
    event_types = EventTypesField(required=False)
    enabled = StrictBooleanField(required=False, help_text="true re-enables a disabled endpoint (clears its reason)")
    description = StrictCharField(required=False, allow_blank=True, max_length=256)


class DeliveryListFilter(PageFilter):
    status = ChoiceQuery(choices=WebhookDelivery.Status.values)


def _iso(value):
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def endpoint_document(endpoint: WebhookEndpoint) -> dict:
    return {
        "id": endpoint.pk,
        "user_id": endpoint.owner_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": _iso(endpoint.disabled_at),
        "failure_streak": endpoint.failure_streak,
        "secret_rotated_at": _iso(endpoint.secret_rotated_at),
        "previous_secret_expires_at": _iso(endpoint.previous_secret_expires_at),
        "created_at": _iso(endpoint.created_at),
        "updated_at": _iso(endpoint.updated_at),
    }


def attempt_document(attempt: WebhookAttempt) -> dict:
    return {
        "number": attempt.number,
        "started_at": _iso(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "response_body": attempt.response_body,
    }


def delivery_document(delivery: WebhookDelivery) -> dict:
    pending = delivery.status == WebhookDelivery.Status.PENDING
    return {
        "id": delivery.pk,
        "endpoint_id": delivery.endpoint_id,
        "event_id": str(delivery.event_id),
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempt_count": delivery.attempt_count,
        "next_attempt_at": _iso(delivery.next_attempt_at) if pending else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": _iso(delivery.created_at),
        "completed_at": _iso(delivery.completed_at),
        "attempts": [attempt_document(a) for a in delivery.attempts.all()],
    }


class WebhookOut(serializers.Serializer):
    id = serializers.IntegerField()
    user_id = serializers.IntegerField(help_text="The owner")
    url = serializers.CharField()
    description = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(help_text="Why it is disabled (empty while enabled)")
    disabled_at = serializers.DateTimeField(allow_null=True)
    failure_streak = serializers.IntegerField(help_text="Deliveries in a row that failed after every retry")
    secret_rotated_at = serializers.DateTimeField(allow_null=True)
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="Until then the previous secret signs too (a second v1 signature)"
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: WebhookEndpoint) -> dict:
        return endpoint_document(instance)


@extend_schema_serializer(component_name="WebhookWithSecretOut")
class WebhookWithSecretOut(WebhookOut):
    secret = serializers.CharField(help_text="whsec_…: shown in this reply only, never again")


@extend_schema_serializer(many=False)
class WebhookPageOut(serializers.Serializer):
    data = WebhookOut(many=True)  # type: ignore[assignment]  # a declared field, not Serializer.data
    pagination = ListPaginationOut()


class WebhookAttemptOut(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()
    status_code = serializers.IntegerField(allow_null=True, help_text="null when no response came")
    error = serializers.CharField(help_text="Why the attempt did not count as delivered (empty on a 2xx)")
    response_body = serializers.CharField(help_text="The start of the response body (WEBHOOK_MAX_RESPONSE_BYTES)")


class WebhookDeliveryOut(serializers.Serializer):
    id = serializers.IntegerField()
    endpoint_id = serializers.IntegerField()
    event_id = serializers.UUIDField(help_text="The event's event_id, sent as webhook-id")
    event_type = serializers.CharField()
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.values)
    attempt_count = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True, help_text="While pending: the next try")
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    attempts = WebhookAttemptOut(many=True)

    def to_representation(self, instance: WebhookDelivery) -> dict:
        return delivery_document(instance)


@extend_schema_serializer(many=False)
class WebhookDeliveryPageOut(serializers.Serializer):
    data = WebhookDeliveryOut(many=True)  # type: ignore[assignment]
    pagination = ListPaginationOut()
