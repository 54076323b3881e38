#!/usr/bin/env python
"""The benchmark: the API against the database's own ceiling, in one command (the CLI; the parts are bench/*.py).

    .venv/bin/python bench/run.py                      # every scenario, 15 s each
    .venv/bin/python bench/run.py -s uniform,hot -d 30 # a subset, longer
    .venv/bin/python bench/run.py --ceiling-only 3     # just the yardstick, to see the machine drift

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), ``wrk`` and ``pgbench``
(``apt-get update && apt-get install -y wrk postgresql-client``). Uses only databases named
``bench_*``. Each API run is followed at once by the yardstick (``pgbench -n -c 16 -j 1 -T 15``
with ``bench/reference/reference_transfer.sql``), and the ratio of the two is the figure that survives
the drift of a shared machine. Results go to ``bench/results/latest.json``; logs and raw outputs to
``bench/results/raw/<timestamp>/`` (git-ignored). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import psycopg

# Run as a script (`python bench/run.py`): import the parts as the bench package from the repository root,
# never as top-level modules from bench/ (where names like `db` or `report` could shadow others).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

from bench.ceiling import ceiling  # noqa: E402
from bench.config import (  # noqa: E402
    ALIASES,
    API_SCENARIOS,
    DB_API,
    PG_HOST,
    PG_PORT,
    PG_USER,
    READ_SCENARIOS,
    REFERENCE,
    RESULTS,
    ROOT,
    SCENARIOS,
    Options,
    log,
)
from bench.db import (  # noqa: E402
    admin,
    prepare_api_db,
    prepare_reads_db,
)
from bench.load import api_scenarios, reads_scenarios, reconcile_scenario, run_reconcile  # noqa: E402
from bench.profiling import profile  # noqa: E402
from bench.report import git_state, machine, markdown, print_table  # noqa: E402
from bench.roundtrips import round_trip_section  # noqa: E402


def parse_scenarios(text: str) -> list[str]:
    names: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        for name in ALIASES.get(part, [part]):
            if name not in SCENARIOS:
                raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS + list(ALIASES))}")
            if name not in names:
                names.append(name)
    return [n for n in SCENARIOS if n in names]


def check_tools() -> None:
    missing = [tool for tool in ("wrk", "pgbench", "psql") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"missing {', '.join(missing)}: apt-get update && apt-get install -y wrk postgresql-client "
            "(pgbench and psql come with postgresql-client)"
        )
    try:
        admin().close()
    except psycopg.OperationalError as exc:
        raise SystemExit(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as {PG_USER}: {exc}") from exc


def api_rows_check(api: dict, *, captures: bool) -> dict:
    """Rows in bench_api against the 2xx answers seen: every answer is recorded, and only requests wrk
    stopped waiting for may be recorded without one. A capture is a transfer row too (one per capture)."""
    seen, bound = api["seen"], api["unanswered"]
    with admin(DB_API) as conn:
        transfers = conn.execute("SELECT COUNT(*) FROM transactions_transaction WHERE type = 'transfer'").fetchone()[0]
        recorded = {"transfers": transfers}
        if captures:
            recorded["holds"] = conn.execute("SELECT COUNT(*) FROM holds_hold").fetchone()[0]
            recorded["captures"] = conn.execute("SELECT COUNT(*) FROM holds_holdcapture").fetchone()[0]
            recorded["transfers"] -= recorded["captures"]
    match = {kind: 0 <= recorded[kind] - seen[kind] <= bound[kind] for kind in recorded}
    out = {
        "acknowledged_transfers": seen["transfers"],
        "recorded_transfers": recorded["transfers"],
        "unanswered_bound": bound["transfers"],
        "transfers_match": all(match.values()),
    }
    if captures:
        out["holds"] = {kind: {"acknowledged": seen[kind], "recorded": recorded[kind], "unanswered_bound": bound[kind],
                               "match": match[kind]} for kind in ("holds", "captures")}  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "-s", "--scenarios", default="all", help=f"comma list of {', '.join(SCENARIOS)}, reads, transfers, all"
    )
    parser.add_argument("-d", "--duration", type=int, default=15, help="seconds per measured run and per ceiling (15)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured seconds before each API run (3)")
    parser.add_argument("-c", "--connections", type=int, default=16)
    parser.add_argument("-t", "--threads", type=int, default=1, help="wrk threads (1, like pgbench -j 1)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--reads-transactions", type=int, default=1_000_000)
    parser.add_argument("--reads-hot", type=int, default=100_000, help="transactions of the user whose history is read")
    parser.add_argument("--reads-days", type=int, default=365, help="days the dataset's movements are spread over")
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument("--deep-page", type=int, default=None, help="page for history_deep (default: the last page)")
    parser.add_argument("--idempotency-keys", action="store_true", help="send a unique Idempotency-Key per transfer")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the cached 1,000,000-transaction dataset")
    parser.add_argument("--no-round-trips", action="store_true", help="skip the round-trip count through the proxy")
    parser.add_argument(
        "--profile",
        metavar="SCENARIOS",
        help="also py-spy the workers during an extra, unmeasured run of these (e.g. uniform,history_page1)",
    )
    parser.add_argument("--ceiling-only", type=int, metavar="N", help="only run the yardstick N times (drift)")
    parser.add_argument("--check-goals", action="store_true", help="exit 2 when a goal is missed")
    parser.add_argument("--yardstick", type=Path, default=None, help="directory of reference_*.sql (bench/reference)")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()

    check_tools()
    yardstick = args.yardstick or REFERENCE
    if not (yardstick / "reference_transfer.sql").exists():
        raise SystemExit(f"reference_transfer.sql not found in {yardstick}")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = RESULTS / "raw" / stamp
    raw.mkdir(parents=True, exist_ok=True)
    opts = Options(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads,
        users=args.users,
        raw=raw,
        yardstick=yardstick,
        idempotency=args.idempotency_keys,
        reads_transactions=args.reads_transactions,
        reads_hot=args.reads_hot,
        reads_days=args.reads_days,
        page_size=args.page_size,
        deep_page=args.deep_page,
    )
    log(f"raw outputs in {raw.relative_to(ROOT)}")
    started = time.perf_counter()
    load_at_start = Path("/proc/loadavg").read_text().split()[:3]

    if args.ceiling_only:
        for i in range(args.ceiling_only):
            for nwallets in (1000, 2):
                ceiling(opts, nwallets=nwallets, label=f"alone{i + 1}_n{nwallets}")
        (raw / "ceilings.json").write_text(json.dumps({"machine": machine(), "ceilings": opts.ceilings}, indent=2))
        for c in opts.ceilings:
            print(
                f"{c['at']}  nwallets={c['nwallets']:<5} {c['tps']:>8.1f} tps  p99 {c['p99_ms']} ms  "
                f"busy {c['machine_busy_pct']}%"
            )
        return 0

    names = parse_scenarios(args.scenarios)
    setup_log = raw / "setup.log"
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    api = hot_user = None
    if any(n in API_SCENARIOS for n in names):
        prepare_api_db(opts, setup_log)
        api = api_scenarios(opts, [n for n in names if n in API_SCENARIOS], results, skipped)
    reads = [n for n in names if n in READ_SCENARIOS]
    if reads or "reconcile" in names:
        hot_user = prepare_reads_db(opts, setup_log, regenerate=args.regenerate)
    if reads:
        reads_scenarios(opts, reads, results, skipped, hot_user)
    if "reconcile" in names:
        reconcile_scenario(opts, results)
    round_trips = {}
    if not args.no_round_trips:
        measured = [n for n in names if n in results]
        round_trips = round_trip_section(opts, measured, api["users"] if api else None, hot_user)
        if api:
            api["seen"]["transfers"] += round_trips["transfer"]["requests_counted"] + 3
        if "hold_capture" in round_trips:
            pairs = round_trips["hold_capture"]["pairs"]
            api["seen"]["holds"] += pairs
            api["seen"]["captures"] += pairs
        for name, row in results.items():
            key = "transfer" if name in ("uniform", "hot") else name
            if key in round_trips:
                row["db_round_trips_per_request"] = round_trips[key]["round_trips_per_request"]
                if "round_trips_per_pair" in round_trips[key]:
                    row["db_round_trips_per_pair"] = round_trips[key]["round_trips_per_pair"]
    profiles = {}
    for name in parse_scenarios(args.profile) if args.profile else []:
        if name not in opts.recipes:
            continue
        log(f"profiling the workers with py-spy during an extra (unmeasured) {name} run")
        profiles[name], answered, counters = profile(opts, name)
        if name in ("uniform", "hot"):
            api["seen"]["transfers"] += answered
            api["unanswered"]["transfers"] += 2 * opts.connections
        elif name == "hold_capture":
            api["seen"]["holds"] += counters.get("holds_ok", 0)
            api["seen"]["captures"] += counters.get("captures_ok", 0)
            api["unanswered"]["holds"] += 2 * opts.connections
            api["unanswered"]["captures"] += 2 * opts.connections
    final = None
    if api:
        log(f"final reconcile of {DB_API}")
        final = run_reconcile(opts, DB_API, "api")
        final.update(api_rows_check(api, captures="hold_capture" in results or "hold_capture" in round_trips))

    document = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/run.py " + " ".join(sys.argv[1:]),
        "git": git_state(),
        "machine": machine(load_at_start),
        "conditions": {
            "server": "gunicorn -c gunicorn.conf.py (sync workers, cpu_count + 1), full middleware stack",
            "settings": "DEBUG=false, production secrets, SECURE_SSL_REDIRECT=false, ALLOWED_HOSTS=127.0.0.1, "
            "DB_CONN_MAX_AGE=600 (persistent connections), RATELIMIT_ENABLE=false, LOG_LEVEL=WARNING, "
            "Kafka disabled (KAFKA_BOOTSTRAP_SERVERS empty: events stay in the outbox table), no Redis",
            "load": f"wrk -t{opts.threads} -c{opts.connections} -d{opts.duration}s --timeout {opts.timeout}, "
            f"{opts.warmup}s unmeasured warm-up; closed loop like pgbench",
            "ceiling": f"pgbench -n -c {opts.connections} -j 1 -T {opts.duration} -D nwallets=N -f "
            "reference_transfer.sql on a freshly loaded reference_schema.sql, right after each API run",
            "idempotency_keys": opts.idempotency,
            "yardstick_sha256": {
                p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
                for p in sorted(yardstick.glob("reference_*.sql"))
            },
            "shared_machine": "other helpers' test suites may run at the same time; see machine_busy_pct and "
            "other_cpu_s per scenario",
        },
        "scenarios": results,
        "skipped": skipped,
        "round_trips": round_trips,
        "ceilings": opts.ceilings,
        "profile": profiles,
        "final_reconcile": final,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "raw": str(raw.relative_to(ROOT)),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    (raw / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    (raw / "summary.md").write_text(markdown(document))
    print_table(results, round_trips, final, skipped)
    print(f"\nresults: {args.output}  raw: {raw.relative_to(ROOT)}  ({document['elapsed_s']} s)")
    if final is not None and not (final["ok"] and final["transfers_match"]):
        print("FAILED: the API database does not reconcile after the load", file=sys.stderr)
        return 1
    if args.check_goals and not all(r["goals"]["all_met"] for r in results.values()):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
