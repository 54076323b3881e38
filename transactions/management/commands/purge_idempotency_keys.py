from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from transactions.idempotency import idempotency_purge


class Command(BaseCommand):
    help = "Delete Idempotency-Key records older than IDEMPOTENCY_KEY_RETENTION_HOURS (run it daily, e.g. from cron)."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=int, default=None, help="retention override, in hours")

    def handle(self, *args, **options):
        hours = options["hours"] if options["hours"] is not None else settings.IDEMPOTENCY_KEY_RETENTION_HOURS
        deleted = idempotency_purge(older_than=timedelta(hours=hours))
        self.stdout.write(f"deleted {deleted} idempotency keys older than {hours} h")
