"""wallet_project.core is plumbing: no models (lint-imports checks that it imports no app)."""

from pathlib import Path

from django.apps import apps

import wallet_project.core


def test_the_core_app_has_no_models():
    assert list(apps.get_app_config("core").get_models()) == []
    assert not (Path(wallet_project.core.__file__).parent / "models.py").exists()


def test_the_moved_models_keep_their_tables():
    assert apps.get_model("events", "OutboxEvent")._meta.db_table == "core_outboxevent"
    assert apps.get_model("transactions", "IdempotencyKey")._meta.db_table == "core_idempotencykey"
