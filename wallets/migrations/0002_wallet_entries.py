from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("wallets", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="wallet",
            name="entries",
            field=models.PositiveBigIntegerField(default=0, editable=False),
        ),
    ]
