from decimal import Decimal

from django.db import migrations

# USDT comes first (id 1): seed clients pick currencies[0] and rely on its 1,000,000 limit.
CURRENCIES = [
    {"code": "USDT", "name": "Tether USD", "symbol": "₮", "decimals": 6, "is_default": True,
     "max_transfer_amount": Decimal("1000000")},
    {"code": "BTC", "name": "Bitcoin", "symbol": "₿", "decimals": 8, "is_default": True,
     "max_transfer_amount": Decimal("100")},
    {"code": "ETH", "name": "Ether", "symbol": "Ξ", "decimals": 8, "is_default": True,
     "max_transfer_amount": Decimal("10000")},
    {"code": "USDC", "name": "USD Coin", "symbol": "$", "decimals": 6, "is_default": False,
     "max_transfer_amount": Decimal("1000000")},
]


def seed(apps, schema_editor):
    Currency = apps.get_model("currencies", "Currency")
    for fields in CURRENCIES:
        Currency.objects.update_or_create(code=fields["code"], defaults=fields)


def unseed(apps, schema_editor):
    apps.get_model("currencies", "Currency").objects.filter(code__in=[c["code"] for c in CURRENCIES]).delete()


class Migration(migrations.Migration):
    dependencies = [("currencies", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
