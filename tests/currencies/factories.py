from decimal import Decimal

import factory

from currencies.models import Currency


class CurrencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Currency

    code = factory.Sequence(lambda n: f"TST{n}")
    name = factory.LazyAttribute(lambda o: f"Test coin {o.code}")
    symbol = "T"
    decimals = 8
    is_active = True
    is_default = False
    max_transfer_amount = Decimal("1000")
