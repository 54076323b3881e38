
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('transactions', '0007_transfer_batch'),
    ]

    operations = [
        migrations.AddField(
            model_name='idempotencykey',
            name='error_fields',
            field=models.JSONField(blank=True, null=True),
        ),
    ]
