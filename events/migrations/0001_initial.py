"""OutboxEvent moves from the core app to the events app: state only, same table.

The table ``core_outboxevent`` stays where it is (Meta.db_table), so no row is copied; the content
type is relabelled so its permissions (a staff member's outbox rights) and admin log entries follow.
"""

import uuid

from django.db import migrations, models


def relabel(apps, schema_editor, *, old: str, new: str, model: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label=new, model=model).exists():
        ContentType.objects.using(db).filter(app_label=old, model=model).update(app_label=new)


def forwards(apps, schema_editor):
    relabel(apps, schema_editor, old="core", new="events", model="outboxevent")


def backwards(apps, schema_editor):
    relabel(apps, schema_editor, old="events", new="core", model="outboxevent")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("core", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="OutboxEvent",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("event_id", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                        ("topic", models.CharField(max_length=255)),
                        ("key", models.CharField(max_length=255)),
                        ("payload", models.JSONField()),
                        ("headers", models.JSONField(default=dict)),
                        (
                            "state",
                            models.CharField(
                                choices=[("pending", "Pending"), ("published", "Published")],
                                default="pending",
                                max_length=16,
                            ),
                        ),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("last_error", models.TextField(blank=True, default="")),
                        ("available_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("published_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        "db_table": "core_outboxevent",
                        "indexes": [
                            models.Index(condition=models.Q(("state", "pending")), fields=["id"], name="outbox_pending")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
