"""The load runs: wrk against the server with CPU and database counters around it, one function per scenario."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from decimal import Decimal

from bench.ceiling import ceiling
from bench.config import (
    DB_API,
    DB_READS,
    GOALS,
    LUA,
    PY,
    Options,
    log,
)
from bench.cpu import (
    CLK_TCK,
    BackendSampler,
    cpu_delta,
    cpu_of,
    loadavg,
    machine_cpu,
    proc_cpu,
    run_child,
    run_measured,
)
from bench.db import (
    admin,
    backend_pids,
    db_stats,
    mint,
    query_pids,
)
from bench.server import Server, bench_env, http, probe, read_tokens


def wrk(
    opts: Options, *, name: str, url: str, script: str, env: dict[str, str], duration: int, connections: int = 0
) -> dict:
    env = {**os.environ, "BENCH_LUA_DIR": str(LUA), **env}
    cmd = [
        "wrk",
        f"-t{opts.threads}",
        f"-c{connections or opts.connections}",
        f"-d{duration}s",
        "--timeout",
        opts.timeout,
        "-s",
        str(LUA / script),
        url,
    ]
    out = opts.raw / f"wrk_{name}.txt"
    code, wall, cpu, _ = run_measured(cmd, env=env, out=out)
    text = out.read_text(errors="replace")
    match = re.search(r"^BENCH_JSON (.*)$", text, re.M)
    if code != 0 or not match:
        raise SystemExit(f"wrk failed for {name} (exit {code}):\n{text[-2000:]}")
    result = json.loads(match.group(1))
    result["wrk_cpu_s"] = round(cpu, 3)
    result["wall_s"] = round(wall, 3)
    return result


def measure(opts: Options, server: Server, *, name: str, database: str, script: str, env: dict[str, str]) -> dict:
    """Warm up, then one measured wrk run with CPU and database counters around it."""
    stats0 = db_stats(database)
    warm = {"requests": 0, "statuses": {}, "errors": {}}
    if opts.warmup > 0:
        warm = wrk(opts, name=f"{name}_warmup", url=server.url, script=script, env=env, duration=opts.warmup)
    workers, backends = server.workers(), backend_pids(database)
    load_before = loadavg()
    app0, db0, master0 = cpu_of(workers), cpu_of(backends), proc_cpu(server.proc.pid)
    app_user0 = {p: proc_cpu(p, user_only=True) or 0.0 for p in workers}
    busy0, total0 = machine_cpu()
    retries0 = server.log_count("retrying transaction")
    result = wrk(opts, name=name, url=server.url, script=script, env=env, duration=opts.duration)
    busy1, total1 = machine_cpu()
    app1, db1 = cpu_of(server.workers()), cpu_of(backend_pids(database))
    app_user1 = {p: proc_cpu(p, user_only=True) or 0.0 for p in app1}
    master1 = proc_cpu(server.proc.pid)
    n = max(1, result["requests"])
    seconds = result["duration_us"] / 1e6
    statuses = result["statuses"]
    ok = sum(v for k, v in statuses.items() if k.startswith("2"))
    socket_errors = sum(result["errors"][k] for k in ("connect", "read", "write", "timeout"))
    app_cpu, db_cpu = cpu_delta(app0, app1), cpu_delta(db0, db1)
    machine_busy = (busy1 - busy0) / CLK_TCK
    ours = app_cpu + db_cpu + (master1 - master0) + result["wrk_cpu_s"]
    lat = result["latency_us"]
    return {
        "scenario": name,
        "requests": result["requests"],
        "seconds": round(seconds, 2),
        "rps": round(result["requests"] / seconds, 1),
        "ok": ok,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p95_ms": lat["p95"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "p999_ms": lat["p999"] / 1000,
        "max_ms": lat["max"] / 1000,
        "mean_ms": round(lat["mean"] / 1000, 2),
        "statuses": statuses,
        "errors_non_2xx": result["requests"] - ok,
        "errors_socket": socket_errors,
        "errors_socket_detail": result["errors"],
        "errors": result["requests"] - ok + socket_errors,
        # The script's own counters (hold_capture.lua: holds and captures sent and answered 2xx)
        "lua_counters": result.get("extra", {}),
        "warmup_lua_counters": warm.get("extra", {}),
        "app_cpu_s": round(app_cpu, 3),
        "db_cpu_s": round(db_cpu, 3),
        "app_cpu_ms_per_request": round(1000 * app_cpu / n, 3),
        "app_user_cpu_ms_per_request": round(1000 * cpu_delta(app_user0, app_user1) / n, 3),
        "db_cpu_ms_per_request": round(1000 * db_cpu / n, 3),
        "app_workers": len(workers),
        "workers_restarted": sorted(set(workers) ^ set(server.workers())),
        "db_backends": len(backends),
        "wrk_cpu_s": result["wrk_cpu_s"],
        "loadavg_before": load_before,
        "machine_busy_pct": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
        "other_cpu_s": round(machine_busy - ours, 2),
        "retries_logged": server.log_count("retrying transaction") - retries0,
        "warmup_requests": warm["requests"],
        "warmup_ok": sum(v for k, v in warm["statuses"].items() if k.startswith("2")),
        "warmup_socket_errors": sum(warm["errors"].get(k, 0) for k in ("connect", "read", "write", "timeout")),
        "_stats_before": stats0,
    }


def finish(opts: Options, row: dict, *, database: str, nwallets: int) -> dict:
    """The ceiling right after the API run, the ratio, and the database counters (flushed by then)."""
    ceil = ceiling(opts, nwallets=nwallets, label=row["scenario"])
    stats0, stats1 = row.pop("_stats_before"), db_stats(database)
    total = max(1, row["requests"] + row["warmup_requests"])
    row.update(
        ceiling_tps=ceil["tps"],
        ceiling_p99_ms=ceil["p99_ms"],
        ceiling_nwallets=nwallets,
        ratio=round(row["rps"] / ceil["tps"], 3),
        db_xacts_per_request=round(
            (stats1["xact_commit"] - stats0["xact_commit"] + stats1["xact_rollback"] - stats0["xact_rollback"]) / total,
            2,
        ),
        db_rollbacks=stats1["xact_rollback"] - stats0["xact_rollback"],
        deadlocks=stats1["deadlocks"] - stats0["deadlocks"],
    )
    if "pairs_per_s" in row:
        # hold_capture: a pair (two requests, a held-only chain entry and a transfer) against one yardstick
        # transfer; the plain ratio above counts both requests.
        row["pair_ratio"] = round(row["pairs_per_s"] / ceil["tps"], 3)
    goals = GOALS.get(row["scenario"], {})
    verdicts = {}
    if "ratio" in goals:
        verdicts["ratio"] = row["ratio"] >= goals["ratio"]
    if "p99_ms" in goals:
        verdicts["p99_ms"] = row["p99_ms"] <= goals["p99_ms"]
    if "errors" in goals:
        verdicts["errors"] = row["errors"] <= goals["errors"]
    if "deadlocks" in goals:
        verdicts["deadlocks"] = row["deadlocks"] <= goals["deadlocks"]
    row["goals"] = {"targets": goals, "met": verdicts, "all_met": all(verdicts.values())}
    log(
        f"  {row['scenario']}: {row['rps']} req/s, p50/p95/p99 {row['p50_ms']}/{row['p95_ms']}/{row['p99_ms']} ms, "
        f"errors {row['errors']}, ratio {row['ratio']}"
        + (f"; {row['pairs_per_s']} pairs/s, pair ratio {row['pair_ratio']}" if "pair_ratio" in row else "")
    )
    return row


HOLD_EXPIRES_IN = 3600  # seconds: far beyond a run, so no hold expires under the load


def hold_pair(url: str, payer_token: str, payee_id: int, payee_token: str, amount: str) -> str | None:
    """Place a hold for ``payee_id`` and capture it as the payee, checking both answers against the contract.

    Returns why the scenario cannot run when this code has no holds API (``POST /holds`` is an unknown
    path: 404 ``NOT_FOUND``); any other unexpected answer stops the bench.
    """
    body = {"to_user_id": payee_id, "currency": "USDT", "amount": amount, "expires_in": HOLD_EXPIRES_IN}
    status, hold = http("POST", f"{url}/holds", token=payer_token, body=body)
    if status == 404 and hold.get("code") == "NOT_FOUND":
        return "POST /holds answered 404 NOT_FOUND: this code has no holds API"
    if status != 201 or hold.get("payee_user_id") != payee_id or hold.get("status") != "active" or "id" not in hold:
        raise SystemExit(f"probe POST /holds answered {status}: {hold}")
    status, captured = http("POST", f"{url}/holds/{hold['id']}/capture", token=payee_token, body={})
    if status != 200 or captured.get("hold", {}).get("status") != "captured" or "transaction" not in captured:
        raise SystemExit(f"probe POST /holds/{hold['id']}/capture answered {status}: {captured}")
    return None


def api_scenarios(opts: Options, names: list[str], results: dict, skipped: dict) -> dict:
    """The scenarios on bench_api, one server: uniform and hot transfers, then hold_capture pairs."""
    uniform_tokens = mint(opts, DB_API, "uniform", "--all")
    users = sorted({uid for uid, _ in read_tokens(uniform_tokens)})
    hot_tokens = mint(opts, DB_API, "hot", "--user-id", str(users[0]), "--user-id", str(users[1]), "--per-user", "8")
    token_of = dict(read_tokens(uniform_tokens))
    amount = "0.000001"
    # Answers seen (2xx) and the bound on rows that may exist without one (requests wrk abandoned in
    # flight when it stopped, timed-out requests that still committed), per kind of row.
    seen = {"transfers": 0, "holds": 0, "captures": 0}
    unanswered = {"transfers": 0, "holds": 0, "captures": 0}
    in_flight = opts.connections * (2 if opts.warmup else 1)
    with Server(database=DB_API, logfile=opts.raw / "gunicorn_api.log") as server:
        probe(
            f"{server.url}/wallet/transfer",
            token_of[users[0]],
            method="POST",
            body={"to_user_id": users[1], "currency": "USDT", "amount": amount},
        )
        seen["transfers"] += 1
        for name in names:
            if name == "hold_capture":
                reason = hold_pair(server.url, token_of[users[0]], users[1], token_of[users[1]], amount)
                if reason:
                    log(f"scenario {name}: skipped, {reason}")
                    skipped[name] = reason
                    continue
                seen["holds"] += 1
                seen["captures"] += 1
            tokens = hot_tokens if name == "hot" else uniform_tokens
            env = {
                "BENCH_TOKENS": str(tokens),
                "BENCH_AMOUNT": amount,
                "BENCH_IDEMPOTENCY": "1" if opts.idempotency else "0",
            }
            script = "transfer.lua"
            if name == "hold_capture":
                script = "hold_capture.lua"
                env["BENCH_EXPIRES_IN"] = str(HOLD_EXPIRES_IN)
            log(f"scenario {name}: {opts.connections} connections, {opts.duration}s after {opts.warmup}s warm-up")
            opts.recipes[name] = (DB_API, script, env)
            row = measure(opts, server, name=name, database=DB_API, script=script, env=env)
            lost = row["errors_socket"] + row["warmup_socket_errors"] + in_flight
            if name == "hold_capture":
                lua, warm = row["lua_counters"], row["warmup_lua_counters"]
                seen["holds"] += lua.get("holds_ok", 0) + warm.get("holds_ok", 0)
                seen["captures"] += lua.get("captures_ok", 0) + warm.get("captures_ok", 0)
                unanswered["holds"] += lost
                unanswered["captures"] += lost
                hold_figures(row)
            else:
                # wrk stops with up to one request in flight per connection, and a timed-out request may
                # still commit: those transfers are recorded without a 2xx having been seen.
                seen["transfers"] += row["ok"] + row["warmup_ok"]
                unanswered["transfers"] += lost
            results[name] = finish(opts, row, database=DB_API, nwallets=2 if name == "hot" else 1000)
    return {"seen": seen, "unanswered": unanswered, "users": users}


def hold_figures(row: dict) -> None:
    """Per pair (a hold placed and captured): rate, CPU and what is left over, from the script's counters."""
    lua = row["lua_counters"]
    pairs = lua.get("captures_ok", 0)
    row.update(
        holds_sent=lua.get("holds_sent", 0),
        holds_ok=lua.get("holds_ok", 0),
        captures_sent=lua.get("captures_sent", 0),
        captures_ok=pairs,
        # Holds answered but not captured when wrk stopped (at most one waiting per connection) plus
        # captures in flight; they stay active, so the ledger's held total covers them.
        holds_left_active=lua.get("holds_ok", 0) - pairs,
        pairs_per_s=round(pairs / row["seconds"], 1) if row["seconds"] else 0.0,
        app_cpu_ms_per_pair=round(1000 * row["app_cpu_s"] / max(1, pairs), 3),
        db_cpu_ms_per_pair=round(1000 * row["db_cpu_s"] / max(1, pairs), 3),
    )


def dataset_span(hot_user: int) -> tuple[dt.datetime, dt.datetime]:
    """The first and the last of the hot user's entries in bench_reads (the span its reads ask about)."""
    with admin(DB_READS) as conn:
        first, last = conn.execute(
            "SELECT min(created_at), max(created_at) FROM audit_balancehistory WHERE user_id = %s", [hot_user]
        ).fetchone()
    return first, last


def statement_month(first: dt.datetime, last: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The calendar month (UTC) around the middle of the span, ``[start, next month's start)``; the whole
    span when no calendar month fits in it (a dataset of a few weeks)."""
    middle = (first + (last - first) / 2).astimezone(dt.UTC)
    start = middle.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    if start < first or end > last:
        return first, last
    return start, end


def rfc3339(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def ledger_at(hot_user: int, at: dt.datetime) -> Decimal | None:
    """The hot user's USDT balance at ``at`` from its chain: the last entry stamped at or before it."""
    with admin(DB_READS) as conn:
        row = conn.execute(
            "SELECT h.balance_after FROM audit_balancehistory h JOIN wallets_wallet w ON w.id = h.wallet_id "
            "JOIN currencies_currency c ON c.id = w.currency_id "
            "WHERE h.user_id = %s AND c.code = 'USDT' AND h.created_at <= %s ORDER BY h.seq DESC LIMIT 1",
            [hot_user, at],
        ).fetchone()
    return row[0] if row else None


def ledger_window(hot_user: int, start: dt.datetime, end: dt.datetime) -> dict:
    """What a statement of ``[start, end)`` must say, from the chain itself."""
    with admin(DB_READS) as conn:
        count, total_in, total_out = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(h.delta) FILTER (WHERE h.delta > 0), 0), "
            "COALESCE(-SUM(h.delta) FILTER (WHERE h.delta < 0), 0) "
            "FROM audit_balancehistory h JOIN wallets_wallet w ON w.id = h.wallet_id "
            "JOIN currencies_currency c ON c.id = w.currency_id "
            "WHERE h.user_id = %s AND c.code = 'USDT' AND h.created_at >= %s AND h.created_at < %s",
            [hot_user, start, end],
        ).fetchone()
    before = ledger_at(hot_user, start - dt.timedelta(microseconds=1))
    return {
        "count": count,
        "opening_balance": before or Decimal(0),
        "closing_balance": ledger_at(hot_user, end - dt.timedelta(microseconds=1)) or Decimal(0),
        "total_in": total_in,
        "total_out": total_out,
    }


def check_pit(url: str, token: str, hot_user: int, at: dt.datetime) -> str | None:
    """One point-in-time read against the contract and the chain; why the scenario cannot run, if so."""
    path = f"/wallet/{hot_user}?at={rfc3339(at)}"
    status, body = http("GET", url + path, token=token)
    if status == 200 and "as_of" not in body:
        return f"GET {path} answered the current wallet (no as_of): this code has no point-in-time reads"
    if status != 200:
        raise SystemExit(f"probe GET {path} answered {status}: {body}")
    expected = ledger_at(hot_user, at)
    if expected is None or Decimal(body["balance"]) != expected or not {"held", "available"} <= body.keys():
        raise SystemExit(f"probe GET {path}: {body}, but the chain says balance {expected}")
    return None


def check_statement(
    url: str, token: str, path: str, hot_user: int, window: tuple[dt.datetime, dt.datetime]
) -> str | None:
    """The statement's first page against the contract and the chain; why the scenario cannot run, if so."""
    status, body = http("GET", url + path, token=token)
    if status == 404 and body.get("code") == "NOT_FOUND":
        return f"GET {path} answered 404 NOT_FOUND: this code has no statement endpoint"
    if status != 200:
        raise SystemExit(f"probe GET {path} answered {status}: {body}")
    want = ledger_window(hot_user, *window)
    got = {k: body.get(k) for k in want}
    money = ("opening_balance", "closing_balance", "total_in", "total_out")
    agrees = got["count"] == want["count"] and all(got[k] is not None and Decimal(got[k]) == want[k] for k in money)
    if not agrees or len(body.get("data") or []) != min(want["count"], 20):
        raise SystemExit(f"probe GET {path}: {got} and {len(body.get('data') or [])} rows, but the chain says {want}")
    return None


def one_connection(opts: Options, server: Server, name: str, script: str, env: dict[str, str], row: dict) -> None:
    """The same request from one connection: its service time, without 15 others queued in front of it."""
    one = wrk(opts, name=f"{name}_1conn", url=server.url, script=script, env=env, duration=opts.duration, connections=1)
    lat = one["latency_us"]
    row["single_connection"] = {
        "rps": round(one["requests"] / (one["duration_us"] / 1e6), 1),
        "p50_ms": lat["p50"] / 1000,
        "p95_ms": lat["p95"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "errors": one["requests"]
        - sum(v for k, v in one["statuses"].items() if k.startswith("2"))
        + sum(one["errors"].values()),
        "requests": one["requests"],
    }
    goals, met = row["goals"]["targets"], row["goals"]["met"]
    if "p99_ms_one_connection" in goals:
        met["p99_ms_one_connection"] = lat["p99"] / 1000 <= goals["p99_ms_one_connection"]
    if "errors" in goals:
        met["errors_one_connection"] = row["single_connection"]["errors"] <= goals["errors"]
    row["goals"]["all_met"] = all(met.values())
    log(f"  {name} with one connection: p50/p95/p99 {lat['p50'] / 1000}/{lat['p95'] / 1000}/{lat['p99'] / 1000} ms")


def reads_scenarios(opts: Options, names: list[str], results: dict, skipped: dict, hot_user: int) -> None:
    """The reads of the hot user on bench_reads, one server: its history (page 1, the last page), its
    wallet at random past instants (pit), and a one-month statement's first page (statement: by cursor,
    statement_pages: page numbers). Each at the usual connections, then at one."""
    tokens = mint(opts, DB_READS, "history", "--user-id", str(hot_user), "--per-user", str(opts.connections))
    token = read_tokens(tokens)[0][1]
    last_page = math.ceil(opts.reads_hot / opts.page_size)
    first, last = dataset_span(hot_user)
    window = statement_month(first, last)
    statement = f"/wallet/{hot_user}/statement?currency=USDT&from={rfc3339(window[0])}&to={rfc3339(window[1])}"
    with Server(database=DB_READS, logfile=opts.raw / "gunicorn_reads.log") as server:
        for name in names:
            env = {"BENCH_TOKENS": str(tokens)}
            script, extra = "get.lua", {}
            if name.startswith("history"):
                page = 1 if name == "history_page1" else opts.deep_page or last_page
                path = f"/transactions/{hot_user}?page={page}&page_size={opts.page_size}"
                body = probe(server.url + path, token)
                if not body.get("data"):
                    raise SystemExit(f"{path} returned no rows: {body.get('pagination')}")
                log(f"scenario {name}: GET {path} (total {body['pagination']['total']:,})")
                extra = {"page": page, "history_total": body["pagination"]["total"]}
                env["BENCH_PATH"] = path
            elif name == "pit":
                reason = check_pit(server.url, token, hot_user, first + (last - first) / 2)
                if reason:
                    log(f"scenario {name}: skipped, {reason}")
                    skipped[name] = reason
                    continue
                # Random instants over the span, whole seconds plus random microseconds (pit.lua).
                script, path = "pit.lua", f"/wallet/{hot_user}?at=<random instant>"
                env.update(
                    BENCH_PATH=f"/wallet/{hot_user}",
                    BENCH_AT_FIRST=str(math.ceil(first.timestamp())),
                    BENCH_AT_LAST=str(math.floor(last.timestamp())),
                )
                # The round trips: 33 instants spread evenly over the span.
                opts.read_paths[name] = [
                    f"/wallet/{hot_user}?at={rfc3339(first + (last - first) * (i + 0.5) / 33)}" for i in range(33)
                ]
                extra = {"at_first": rfc3339(first), "at_last": rfc3339(last)}
                log(f"scenario {name}: GET /wallet/{hot_user}?at=<random in {rfc3339(first)} .. {rfc3339(last)}>")
            else:
                path = statement + ("&limit=20" if name == "statement" else "&page=1&page_size=20")
                reason = check_statement(server.url, token, path, hot_user, window)
                if reason:
                    log(f"scenario {name}: skipped, {reason}")
                    skipped[name] = reason
                    continue
                count = ledger_window(hot_user, *window)["count"]
                opts.read_paths[name] = [path] * 33
                env["BENCH_PATH"] = path
                extra = {"window": [rfc3339(window[0]), rfc3339(window[1])], "entries_in_window": count}
                log(f"scenario {name}: GET {path} ({count:,} entries in the window)")
            opts.recipes[name] = (DB_READS, script, env)
            row = measure(opts, server, name=name, database=DB_READS, script=script, env=env)
            row.update(path=path, **extra)
            results[name] = finish(opts, row, database=DB_READS, nwallets=1000)
            # With 16 connections latency is mostly queueing (p50 ~ 16 / throughput); one connection shows
            # the service time of the request itself.
            one_connection(opts, server, name, script, env, results[name])


def run_reconcile(opts: Options, database: str, label: str) -> dict:
    out = opts.raw / f"reconcile_{label}.json"
    cmd = [str(PY), "manage.py", "reconcile", "--json"]
    before = loadavg()
    with BackendSampler(lambda: query_pids(database)) as backends:
        run = run_child(cmd, env=bench_env(database), out=out, err=opts.raw / f"reconcile_{label}.stderr.txt")
    text = out.read_text(errors="replace")
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        report = {}
    with admin(database) as conn:
        transactions = conn.execute("SELECT COUNT(*) FROM transactions_transaction").fetchone()[0]
        history = conn.execute("SELECT COUNT(*) FROM audit_balancehistory").fetchone()[0]
    return {
        "database": database,
        "exit_code": run.code,
        "ok": run.code == 0 and report.get("ok") is True,
        "seconds": round(run.wall_s, 2),
        "cpu_s": round(run.user_s + run.sys_s, 2),
        "user_s": round(run.user_s, 2),
        "sys_s": round(run.sys_s, 2),
        # PostgreSQL's share: the backends serving the command (sampled, so a lower bound)
        "db_cpu_s": backends.cpu_s,
        "peak_rss_mb": round(run.rss_kib / 1024, 1),
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        "reported_seconds": report.get("seconds"),
        "checkpoints": report.get("checkpoints"),
        "transactions": transactions,
        "balance_history_rows": history,
        "checks": {
            c["name"]: {"checked": c["checked"], "mismatches": c["mismatches"]} for c in report.get("checks", [])
        },
    }


def reconcile_scenario(opts: Options, results: dict) -> None:
    log(f"scenario reconcile: manage.py reconcile --json over {DB_READS}")
    row = run_reconcile(opts, DB_READS, "reads")
    ceil = ceiling(opts, nwallets=1000, label="reconcile")
    row.update(
        scenario="reconcile",
        # Operators checkpoint hourly: the routine reconcile runs after one (receipts verified after it)
        after_checkpoint=opts.reads_checkpoint,
        ceiling_tps=ceil["tps"],
        ceiling_nwallets=1000,
        goals={
            "targets": GOALS["reconcile"],
            "met": {"seconds": row["seconds"] <= GOALS["reconcile"]["seconds"], "ok": row["ok"]},
        },
    )
    row["goals"]["all_met"] = all(row["goals"]["met"].values())
    results["reconcile"] = row
    log(
        f"  reconcile: {row['seconds']} s (CPU {row['cpu_s']} s, PostgreSQL {row['db_cpu_s']} s), "
        f"peak RSS {row['peak_rss_mb']} MB, ok={row['ok']}, load {row['loadavg_before'][0]}"
    )
