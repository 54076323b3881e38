"""Record the release of holds past their expiry (long-running; several copies may run at once).

Expiry needs no sweeper to be enforced: past ``expires_at`` a hold reads as expired, cannot be
captured, and a spend that needs the money releases it (``holds.services``). This worker records the
release of the rest, so that ``held`` comes down and ``hold.expired`` goes out without waiting for a
spend. Each pass is ``holds_expire_due(limit=--batch)``: every hold is released in a transaction of
its own, and a hold another copy (or a capture, a void, a spend) has locked is skipped rather than
waited for, so copies never release a hold twice. A pass that comes back full runs again at once; a
shorter one waits ``--interval`` seconds.

SIGTERM or SIGINT lets the pass in progress finish (at most ``--batch`` holds, each committed on its
own), then the worker exits 0; a second signal stops it at once, rolling back only the hold in flight.
``holds_expire_due`` takes no stop flag, so a pass is the smallest unit the worker can stop between.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections, connection

from holds.services import holds_expire_due

logger = logging.getLogger("wallet.holds.expiry")

DB_ERROR_PAUSE_S = 5.0


class Command(BaseCommand):
    help = "Release the holds past their expiry (long-running; several copies may run at once)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="release what is due now, print how many, exit")
        parser.add_argument(
            "--interval", type=float, default=5.0, help="seconds to wait when nothing more is due (default 5)"
        )
        parser.add_argument("--batch", type=int, default=100, help="holds per pass (default 100)")

    def handle(self, *args, once: bool, interval: float, batch: int, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        if interval <= 0:
            raise CommandError("--interval must be more than 0 seconds")

        stop = threading.Event()
        previous = self._install_signal_handlers(stop)
        try:
            logger.info("expiry started", extra={"batch": batch, "interval": interval, "once": once})
            released = self._loop(stop=stop, once=once, interval=interval, batch=batch)
        finally:
            connection.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        logger.info("expiry stopped", extra={"released": released})
        if once:
            self.stdout.write(json.dumps({"released": released}))

    @staticmethod
    def _loop(*, stop: threading.Event, once: bool, interval: float, batch: int) -> int:
        total = 0
        while not stop.is_set():
            close_old_connections()
            started = time.monotonic()
            try:
                released = holds_expire_due(limit=batch)
            except DatabaseError as exc:
                if once:
                    raise CommandError(f"database error: {exc}") from exc
                logger.error("expiry database error; pausing", extra={"error": str(exc)})
                connection.close()
                stop.wait(DB_ERROR_PAUSE_S)
                continue
            total += released
            if released:
                logger.info(
                    "expiry pass",
                    extra={"released": released, "duration_ms": round((time.monotonic() - started) * 1000, 1)},
                )
            if released < batch:
                if once:
                    break
                stop.wait(interval)
        return total

    @staticmethod
    def _install_signal_handlers(stop: threading.Event) -> dict:
        """SIGTERM/SIGINT finish the current pass, then stop; returns the handlers to put back."""

        def request_stop(signum, frame):
            logger.info("expiry stopping after the current pass", extra={"signal": signal.Signals(signum).name})
            stop.set()
            # A second signal stops at once (the hold in flight rolls back; it stays active and due).
            signal.signal(signum, signal.SIG_DFL)

        return {signum: signal.signal(signum, request_stop) for signum in (signal.SIGTERM, signal.SIGINT)}
