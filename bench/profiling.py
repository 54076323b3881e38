"""Profile (optional): py-spy on the workers during an extra, unmeasured run, summarised by cost bucket."""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import time
from pathlib import Path

from bench.config import (
    PY,
    ROOT,
    Options,
)
from bench.load import wrk
from bench.server import Server


def profile(opts: Options, name: str) -> tuple[dict, int, dict[str, int]]:
    """py-spy on every worker during an extra, unmeasured run of scenario ``name`` (same load).

    Returns the summary, the 2xx answers and the script's counters (holds and captures answered)."""
    spy = shutil.which("py-spy") or str(PY.parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install -r requirements-dev.txt")
    database, script, env = opts.recipes[name]
    out = opts.raw / f"profile_{name}.txt"
    with Server(database=database, logfile=opts.raw / f"gunicorn_profile_{name}.log") as server:
        warm = wrk(opts, name=f"profile_{name}_warmup", url=server.url, script=script, env=env, duration=2)
        # --gil: only samples where a worker holds the GIL, i.e. runs Python; waits on PostgreSQL or on the
        # client's socket release the GIL and are left out, so the shares are shares of application CPU.
        spy_proc = subprocess.Popen(
            [spy, "record", "--pid", str(server.proc.pid), "--subprocesses", "--nonblocking", "--gil",
             "--rate", "250", "--format", "raw", "--duration", str(opts.duration), "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1)
        run = wrk(opts, name=f"profile_{name}", url=server.url, script=script, env=env, duration=opts.duration)
        spy_proc.wait(60)
    ok = sum(v for r in (warm, run) for k, v in r["statuses"].items() if k.startswith("2"))
    counters = {k: warm.get("extra", {}).get(k, 0) + run.get("extra", {}).get(k, 0) for k in run.get("extra", {})}
    return summarize_profile(out), ok, counters


# Frames that name a cost on the request path; inclusive share of worker on-CPU samples.
PROFILE_BUCKETS = [
    ("gunicorn: accept, parse, write, close", "handle (gunicorn/workers/sync.py"),
    ("Django request (WSGIHandler.__call__)", "__call__ (django/core/handlers/wsgi.py"),
    ("  middleware before/after the view", "MiddlewareMixin.__call__ (django/utils/deprecation.py"),
    ("  DRF dispatch (APIView.dispatch)", "dispatch (rest_framework/views.py"),
    ("    authentication (any class, via Request._authenticate)", "_authenticate (rest_framework/request.py"),
    ("      token decode/verify (PyJWT)", "decode (jwt/api_jwt.py"),
    ("      user lookup (get_user)", "get_user (accounts/authentication.py"),
    ("    view: currency lookup (currency_get)", "currency_get (currencies/selectors.py"),
    ("    throttling / rate limit", "check_throttles (rest_framework/views.py"),
    ("    transfer view (TransferViewSet.create)", "create (transactions/api/views.py"),
    ("      input serializer (is_valid)", "is_valid (rest_framework/serializers.py"),
    ("      transfer_create", "transfer_create (transactions/services.py"),
    ("        receipt hash (transaction_hash)", "transaction_hash (audit/receipts.py"),
    ("        Ed25519 sign", "sign (audit/receipts.py"),
    ("        audit chain (entry_hash)", "entry_hash (audit/chain.py"),
    ("        commit (Atomic.__exit__)", "__exit__ (django/db/transaction.py"),
    ("    hold placed (hold_create)", "hold_create (holds/services.py"),
    ("    hold captured (hold_capture)", "hold_capture (holds/services.py"),
    ("      the posting path (ledger_post)", "ledger_post (transactions/services.py"),
    ("    history view (HistoryViewSet.list)", "list (transactions/api/views.py"),
    ("      paginate (count + page)", "paginate (wallet_project/core/pagination.py"),
    ("      history_item (per row)", "history_item (transactions/selectors.py"),
    ("    wallet at an instant (wallet_at)", "wallet_at (wallets/selectors.py"),
    ("    statement: both ends and the totals (wallet_statement)", "wallet_statement (wallets/selectors.py"),
    ("    statement: a cursor page (statement_cursor_page)", "statement_cursor_page (wallets/selectors.py"),
    ("    statement: a numbered page (statement_page)", "statement_page (wallets/selectors.py"),
    ("    statement: the document (statement_document)", "statement_document (wallets/selectors.py"),
    ("    response finalize (render)", "finalize_response (rest_framework/views.py"),
    ("ORM: SQL compilation (as_sql)", "as_sql (django/db/models/sql/compiler.py"),
    ("ORM: model instances (from_db)", "from_db (django/db/models/base.py"),
    ("psycopg: execute (client side)", "execute (psycopg/cursor.py"),
    ("Django DB connection checks (ensure/close_old)", "close_old_connections (django/db/__init__.py"),
    ("logging", "(logging/__init__.py"),
]


def summarize_profile(path: Path) -> dict:
    samples, inclusive, self_time = 0, collections.Counter(), collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if "gunicorn" not in stack or "process " not in frames[0]:
            continue
        n = int(count)
        samples += n
        seen = set()
        for frame in frames[1:]:
            key = re.sub(r":\d+\)$", ")", frame)
            if key not in seen:
                inclusive[key] += n
                seen.add(key)
        self_time[re.sub(r":\d+\)$", ")", frames[-1])] += n
    buckets = {}
    for label, needle in PROFILE_BUCKETS:
        hits = sum(n for k, n in inclusive.items() if needle in k)
        buckets[label] = round(100 * hits / max(1, samples), 1)

    def short(frame: str) -> str:
        return re.sub(r"\(/[^)]*?/(site-packages|lib/python3\.\d+|main)/", "(", frame)

    return {
        "file": str(path.relative_to(ROOT)),
        "worker_samples": samples,
        "buckets_pct": buckets,
        "top_inclusive_pct": {short(k): round(100 * n / samples, 1) for k, n in inclusive.most_common(45)},
        "top_self_pct": {short(k): round(100 * n / samples, 1) for k, n in self_time.most_common(25)},
    }
