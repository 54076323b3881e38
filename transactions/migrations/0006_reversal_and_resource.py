
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('currencies', '0003_money_exact_on_sqlite'),
        ('transactions', '0005_idempotencykey_error_status'),
        ('wallets', '0003_money_exact_on_sqlite'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='transaction',
            name='transaction_legs_match_type',
        ),
        migrations.AddField(
            model_name='idempotencykey',
            name='resource_id',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='transaction',
            name='reverses',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='reversals', to='transactions.transaction'),
        ),
        migrations.AlterField(
            model_name='transaction',
            name='type',
            field=models.CharField(choices=[('transfer', 'Transfer'), ('deposit', 'Deposit'), ('withdrawal', 'Withdrawal'), ('reversal', 'Reversal')], max_length=16),
        ),
        migrations.AddConstraint(
            model_name='transaction',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('from_wallet__isnull', False), ('to_wallet__isnull', False), ('type', 'transfer')), models.Q(('from_wallet__isnull', True), ('to_wallet__isnull', False), ('type', 'deposit')), models.Q(('from_wallet__isnull', False), ('to_wallet__isnull', True), ('type', 'withdrawal')), models.Q(('type', 'reversal'), models.Q(('from_wallet__isnull', False), ('to_wallet__isnull', False), _connector='OR')), _connector='OR'), name='transaction_legs_match_type'),
        ),
        migrations.AddConstraint(
            model_name='transaction',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('reverses__isnull', False), ('type', 'reversal')), models.Q(models.Q(('type', 'reversal'), _negated=True), ('reverses__isnull', True)), _connector='OR'), name='transaction_reversal_names_original'),
        ),
    ]
