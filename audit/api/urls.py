from django.urls import path

from audit.api.views import BalanceHistoryViewSet

urlpatterns = [
    path("audit/balance-history", BalanceHistoryViewSet.as_view({"get": "list"}), name="balance-history"),
]
