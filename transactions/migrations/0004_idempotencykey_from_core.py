"""IdempotencyKey moves from the core app to the ledger that stores it: state only, same table.

The table ``core_idempotencykey`` stays where it is (Meta.db_table), so nothing is copied; the
content type is relabelled so its permissions and admin log entries follow the model.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def relabel(apps, schema_editor, *, old: str, new: str, model: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label=new, model=model).exists():
        ContentType.objects.using(db).filter(app_label=old, model=model).update(app_label=new)


def forwards(apps, schema_editor):
    relabel(apps, schema_editor, old="core", new="transactions", model="idempotencykey")


def backwards(apps, schema_editor):
    relabel(apps, schema_editor, old="transactions", new="core", model="idempotencykey")


class Migration(migrations.Migration):
    dependencies = [
        ("transactions", "0003_money_exact_on_sqlite"),
        ("core", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="IdempotencyKey",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("key", models.CharField(max_length=255)),
                        ("scope", models.CharField(max_length=64)),
                        ("fingerprint", models.CharField(max_length=64)),
                        ("error_code", models.CharField(blank=True, default="", max_length=64)),
                        ("error_message", models.CharField(blank=True, default="", max_length=512)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "transaction",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="transactions.transaction",
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "core_idempotencykey",
                        "constraints": [
                            models.UniqueConstraint(fields=("user", "key"), name="idempotency_key_unique_per_user")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
