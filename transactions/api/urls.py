from django.urls import path

from transactions.api.views import (
    HistoryViewSet,
    MovementViewSet,
    ReceiptViewSet,
    ReversalViewSet,
    TransferBatchViewSet,
    TransferViewSet,
)

urlpatterns = [
    path("wallet/transfer", TransferViewSet.as_view({"post": "create"}), name="transfer"),
    path("transfers/batch", TransferBatchViewSet.as_view({"post": "create"}), name="transfer-batch"),
    path("deposits", MovementViewSet.as_view({"post": "deposit"}), name="deposit"),
    path("withdrawals", MovementViewSet.as_view({"post": "withdraw"}), name="withdrawal"),
    path("transactions/<id:user_id>", HistoryViewSet.as_view({"get": "list"}), name="transaction-history"),
    path("tx/<str:tx_hash>/reversals", ReversalViewSet.as_view({"post": "create"}), name="reversal"),
    path("tx/<str:tx_hash>", ReceiptViewSet.as_view({"get": "retrieve"}), name="receipt"),
    path("receipts/public-key", ReceiptViewSet.as_view({"get": "public_key"}), name="receipt-public-key"),
]
