from django.urls import path

from holds.api.views import HoldViewSet, WithdrawalRequestViewSet

holds = HoldViewSet.as_view({"get": "list", "post": "create"})
withdrawal_requests = WithdrawalRequestViewSet.as_view({"get": "list", "post": "create"})

urlpatterns = [
    path("holds", holds, name="hold-list"),
    path("holds/<id:hold_id>", HoldViewSet.as_view({"get": "retrieve"}), name="hold-detail"),
    path("holds/<id:hold_id>/capture", HoldViewSet.as_view({"post": "capture"}), name="hold-capture"),
    path("holds/<id:hold_id>/void", HoldViewSet.as_view({"post": "void"}), name="hold-void"),
    path("withdrawal-requests", withdrawal_requests, name="withdrawal-request-list"),
    path(
        "withdrawal-requests/<id:request_id>",
        WithdrawalRequestViewSet.as_view({"get": "retrieve"}),
        name="withdrawal-request-detail",
    ),
    *(
        path(
            f"withdrawal-requests/<id:request_id>/{action}",
            WithdrawalRequestViewSet.as_view({"post": action}),
            name=f"withdrawal-request-{action}",
        )
        for action in ("approve", "reject", "cancel")
    ),
]
