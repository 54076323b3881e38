
import currencies.money_field
import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('currencies', '0003_money_exact_on_sqlite'),
        ('transactions', '0005_idempotencykey_error_status'),
        ('wallets', '0003_money_exact_on_sqlite'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Hold',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('status', models.CharField(choices=[('active', 'Active'), ('captured', 'Captured'), ('voided', 'Voided'), ('expired', 'Expired')], default='active', max_length=16)),
                ('amount', currencies.money_field.MoneyField(decimal_places=8, max_digits=20)),
                ('captured', currencies.money_field.MoneyField(decimal_places=8, default=0, max_digits=20)),
                ('memo', models.CharField(blank=True, default='', max_length=256)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('trace_id', models.CharField(blank=True, default='', max_length=128)),
                ('created_at', models.DateTimeField()),
                ('updated_at', models.DateTimeField()),
                ('closed_at', models.DateTimeField(blank=True, null=True)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('currency', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='currencies.currency')),
                ('payee', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('payer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('wallet', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='wallets.wallet')),
            ],
        ),
        migrations.CreateModel(
            name='HoldCapture',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('amount', currencies.money_field.MoneyField(decimal_places=8, max_digits=20)),
                ('created_at', models.DateTimeField()),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('hold', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='captures', to='holds.hold')),
                ('transaction', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='transactions.transaction')),
            ],
        ),
        migrations.CreateModel(
            name='WithdrawalRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('completed', 'Completed'), ('rejected', 'Rejected'), ('cancelled', 'Cancelled')], default='pending', max_length=16)),
                ('amount', currencies.money_field.MoneyField(decimal_places=8, max_digits=20)),
                ('address', models.CharField(max_length=128)),
                ('network', models.CharField(blank=True, default='', max_length=32)),
                ('memo', models.CharField(blank=True, default='', max_length=256)),
                ('network_tx_id', models.CharField(blank=True, default='', max_length=128)),
                ('reason', models.CharField(blank=True, default='', max_length=512)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField()),
                ('updated_at', models.DateTimeField()),
                ('currency', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='currencies.currency')),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('hold', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='withdrawal_request', to='holds.hold')),
                ('transaction', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='transactions.transaction')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'permissions': [('approve_withdrawalrequest', 'Can approve or reject withdrawal requests')],
            },
        ),
        migrations.AddIndex(
            model_name='hold',
            index=models.Index(fields=['payer', '-id'], name='hold_payer_recent'),
        ),
        migrations.AddIndex(
            model_name='hold',
            index=models.Index(fields=['payee', '-id'], name='hold_payee_recent'),
        ),
        migrations.AddIndex(
            model_name='hold',
            index=models.Index(condition=models.Q(('status', 'active')), fields=['expires_at'], name='hold_active_expiry'),
        ),
        migrations.AddConstraint(
            model_name='hold',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='hold_amount_positive'),
        ),
        migrations.AddConstraint(
            model_name='hold',
            constraint=models.CheckConstraint(condition=models.Q(('captured__gte', 0)), name='hold_captured_non_negative'),
        ),
        migrations.AddConstraint(
            model_name='hold',
            constraint=models.CheckConstraint(condition=models.Q(('captured__lte', models.F('amount'))), name='hold_captured_within_amount'),
        ),
        migrations.AddConstraint(
            model_name='hold',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('closed_at__isnull', True), ('status', 'active')), models.Q(models.Q(('status', 'active'), _negated=True), ('closed_at__isnull', False)), _connector='OR'), name='hold_closed_when_not_active'),
        ),
        migrations.AddConstraint(
            model_name='hold',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'captured'), _negated=True), ('captured', models.F('amount')), _connector='OR'), name='hold_captured_in_full'),
        ),
        migrations.AddConstraint(
            model_name='hold',
            constraint=models.CheckConstraint(condition=models.Q(('payee__isnull', True), models.Q(('payee', models.F('payer')), _negated=True), _connector='OR'), name='hold_payee_not_payer'),
        ),
        migrations.AddConstraint(
            model_name='holdcapture',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='hold_capture_amount_positive'),
        ),
        migrations.AddIndex(
            model_name='withdrawalrequest',
            index=models.Index(fields=['user', '-id'], name='withdrawal_request_user_recent'),
        ),
        migrations.AddIndex(
            model_name='withdrawalrequest',
            index=models.Index(condition=models.Q(('status', 'pending')), fields=['created_at'], name='withdrawal_request_pending'),
        ),
        migrations.AddConstraint(
            model_name='withdrawalrequest',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='withdrawal_request_amount_positive'),
        ),
        migrations.AddConstraint(
            model_name='withdrawalrequest',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'completed'), ('transaction__isnull', False)), models.Q(models.Q(('status', 'completed'), _negated=True), ('transaction__isnull', True)), _connector='OR'), name='withdrawal_request_completed_has_transaction'),
        ),
        migrations.AddConstraint(
            model_name='withdrawalrequest',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('decided_at__isnull', True), ('status', 'pending')), models.Q(models.Q(('status', 'pending'), _negated=True), ('decided_at__isnull', False)), _connector='OR'), name='withdrawal_request_decided_when_not_pending'),
        ),
    ]
