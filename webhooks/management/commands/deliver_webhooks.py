"""Deliver webhooks (long-running; several copies may run at once). See webhooks.delivery.

Each pass fans new outbox rows out to the endpoints (one copy at a time does that step), then sends up
to ``--batch`` due deliveries, one at a time, each under its own lease. A pass that found work runs
again at once; an idle one waits ``--interval`` seconds.

SIGTERM or SIGINT lets the attempt in progress finish and be recorded, then the worker exits 0; a second
signal stops it at once (the attempt's lease expires and another worker sends the delivery again).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections, connection

from webhooks.delivery import deliver_next, webhooks_fan_out

logger = logging.getLogger("wallet.webhooks.worker")

DB_ERROR_PAUSE_S = 5.0


class Command(BaseCommand):
    help = "Deliver webhooks from the outbox (long-running; several copies may run at once)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="fan out and send what is due now, print counts, exit")
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds to wait when nothing is due (default 1)"
        )
        parser.add_argument("--batch", type=int, default=100, help="events to fan out and deliveries per pass")

    def handle(self, *args, once: bool, interval: float, batch: int, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        if interval <= 0:
            raise CommandError("--interval must be more than 0 seconds")
        stop = threading.Event()
        previous = self._install_signal_handlers(stop)
        totals = {"fanned_out": 0, "succeeded": 0, "retrying": 0, "failed": 0}
        try:
            logger.info("webhooks worker started", extra={"batch": batch, "interval": interval, "once": once})
            self._loop(totals, stop=stop, once=once, interval=interval, batch=batch)
        finally:
            connection.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        logger.info("webhooks worker stopped", extra=totals)
        if once:
            self.stdout.write(json.dumps(totals))

    @staticmethod
    def _loop(totals: dict, *, stop: threading.Event, once: bool, interval: float, batch: int) -> None:
        while not stop.is_set():
            close_old_connections()
            started = time.monotonic()
            try:
                fanned = webhooks_fan_out(limit=batch)
                totals["fanned_out"] += fanned
                sent = 0
                while sent < batch and not stop.is_set():
                    status = deliver_next()
                    if status is None:
                        break
                    sent += 1
                    key = {"succeeded": "succeeded", "pending": "retrying", "failed": "failed"}.get(status)
                    if key:
                        totals[key] += 1
            except DatabaseError as exc:
                if once:
                    raise CommandError(f"database error: {exc}") from exc
                logger.error("webhooks worker database error; pausing", extra={"error": str(exc)})
                connection.close()
                stop.wait(DB_ERROR_PAUSE_S)
                continue
            if fanned or sent:
                logger.info(
                    "webhooks pass",
                    extra={
                        "fanned_out": fanned,
                        "attempts": sent,
                        "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    },
                )
            if fanned < batch and sent < batch:
                if once:
                    break
                stop.wait(interval)

    @staticmethod
    def _install_signal_handlers(stop: threading.Event) -> dict:
        """SIGTERM/SIGINT finish the current attempt, then stop; returns the handlers to put back."""

        def request_stop(signum, frame):
            logger.info(
                "webhooks worker stopping after the current attempt", extra={"signal": signal.Signals(signum).name}
            )
            stop.set()
            signal.signal(signum, signal.SIG_DFL)

        return {signum: signal.signal(signum, request_stop) for signum in (signal.SIGTERM, signal.SIGINT)}
