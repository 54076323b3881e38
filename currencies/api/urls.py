from django.urls import path

from currencies.api.views import CurrencyViewSet

urlpatterns = [
    path("currencies", CurrencyViewSet.as_view({"get": "list"}), name="currency-list"),
    path("currencies/<id:pk>", CurrencyViewSet.as_view({"get": "retrieve"}), name="currency-detail"),
]
