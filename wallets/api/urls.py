from django.urls import path

from wallets.api.views import WalletStatementViewSet, WalletViewSet

urlpatterns = [
    path("wallet/<id:user_id>", WalletViewSet.as_view({"get": "retrieve"}), name="wallet-detail"),
    path("wallet/<id:user_id>/stats", WalletViewSet.as_view({"get": "stats"}), name="wallet-stats"),
    path("wallet/<id:user_id>/statement", WalletStatementViewSet.as_view({"get": "retrieve"}), name="wallet-statement"),
    path("wallets", WalletViewSet.as_view({"get": "list", "post": "create"}), name="wallet-list"),
]
