import factory

from currencies.models import Currency
from tests.accounts.factories import UserFactory
from wallets.models import Wallet


class WalletFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Wallet

    user = factory.SubFactory(UserFactory)
    currency = factory.LazyFunction(lambda: Currency.objects.get(code="USDT"))
