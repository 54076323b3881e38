"""The console's sections: models grouped by what operators do, not by the Python app that owns them.

Each entry is a section's name, its slug (``/admin/section/<slug>/``) and its models as
``app_label.model_name``, in the order shown, or ``app_label`` for every model of an app (a new app's
admin joins its section with one line, e.g. ``("Webhooks", "webhooks", ["webhooks"])``). A registered
model no section names is shown under "Other", so nothing disappears from the console.
"""

from __future__ import annotations

SECTIONS: list[tuple[str, str, list[str]]] = [
    ("Ledger", "ledger", ["transactions.transaction", "wallets.wallet", "currencies.currency"]),
    ("Customers", "customers", ["accounts.user", "auth.group", "token_blacklist"]),
    (
        "Operations",
        "operations",
        ["holds.withdrawalrequest", "holds.hold", "events.outboxevent", "transactions.idempotencykey"],
    ),
    ("Webhooks", "webhooks", ["webhooks.webhookendpoint", "webhooks.webhookdelivery"]),
    (
        "Audit",
        "audit",
        ["audit.reconcilerun", "audit.checkpoint", "audit.balancehistory"],
    ),
]
OTHER = ("Other", "other")


def section_of(app_label: str, model_name: str) -> tuple[str, str, int]:
    """(name, slug, position) of the section a model is shown in; "Other" for one no section names."""
    key = f"{app_label}.{model_name}"
    for name, slug, members in SECTIONS:
        for position, member in enumerate(members):
            if member in (key, app_label):
                return name, slug, position
    return *OTHER, 0
