
import currencies.money_field
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('currencies', '0003_money_exact_on_sqlite'),
        ('wallets', '0003_money_exact_on_sqlite'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='wallet',
            name='held',
            field=currencies.money_field.MoneyField(decimal_places=8, default=0, max_digits=20),
        ),
        migrations.AddField(
            model_name='wallet',
            name='postings',
            field=models.PositiveBigIntegerField(default=0, editable=False),
        ),
        migrations.AddConstraint(
            model_name='wallet',
            constraint=models.CheckConstraint(condition=models.Q(('held__gte', 0)), name='wallet_held_non_negative'),
        ),
        migrations.AddConstraint(
            model_name='wallet',
            constraint=models.CheckConstraint(condition=models.Q(('held__lte', models.F('balance'))), name='wallet_held_within_balance'),
        ),
    ]
