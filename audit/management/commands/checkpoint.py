import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.checkpoint import CheckpointError, export, take


class Command(BaseCommand):
    help = (
        "Write a signed checkpoint of the ledger (every wallet's chain length and head, per-currency supply "
        "and held, the last transaction id and the count up to it, the last balance-history entry id), publish "
        "it as a ledger.checkpoint event and, with --out, save it as a file to keep outside the database. "
        "Schedule it (cron), e.g. hourly."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", metavar="FILE", help="write the signed checkpoint with every head to FILE")

    def handle(self, *args, **options):
        if settings.KAFKA_BOOTSTRAP_SERVERS:
            from events.publisher import ensure_topic

            # The publisher creates only the transaction topic; producers never auto-create one. Never
            # raises: with Kafka down the event stays pending in the outbox for the relay.
            ensure_topic(bootstrap=settings.KAFKA_BOOTSTRAP_SERVERS, topic=settings.KAFKA_CHECKPOINT_TOPIC)
        try:
            checkpoint, heads = take()
        except CheckpointError as exc:
            raise CommandError(str(exc), returncode=1) from exc
        if options["out"]:
            # Written next to the target and renamed: a reader never sees half a checkpoint.
            path = options["out"]
            partial = f"{path}.partial"
            with open(partial, "w", encoding="utf-8") as handle:
                json.dump(export(checkpoint, heads), handle, separators=(",", ":"))
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
        self.stdout.write(
            json.dumps(
                {
                    "checkpoint_id": checkpoint.pk,
                    "created_at": checkpoint.created_at.isoformat(),
                    "last_transaction_id": checkpoint.last_transaction_id,
                    "transaction_count": checkpoint.transaction_count,
                    "last_entry_id": json.loads(checkpoint.payload)["last_entry_id"],
                    "wallets_with_history": len(heads),
                    "heads_digest": checkpoint.heads_digest,
                    "out": options["out"],
                }
            )
        )
