"""Reporting: the machine, the commit, the table on stdout and the Markdown for docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

from bench.config import (
    ROOT,
    SCENARIOS,
)
from bench.db import (
    admin,
)


def machine(loadavg_at_start: list[str] | None = None) -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*(.*)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    with admin() as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
        pg_settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', "
                "'fsync', 'max_connections', 'wal_level', 'work_mem')"
            ).fetchall()
        )

    def version(cmd: list[str]) -> str:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr) else "?"

    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cpu_mhz": mhz.group(1).strip() if mhz else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
        "wrk": version(["wrk", "--version"]),
        "pgbench": version(["pgbench", "--version"]),
        # As the command started (read again here when not given: the end of the run)
        "loadavg_at_start": loadavg_at_start or Path("/proc/loadavg").read_text().split()[:3],
    }


def git_state() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty_files": len(git("status", "--porcelain").splitlines()),
    }


def print_table(results: dict, round_trips: dict, final: dict | None, skipped: dict | None = None) -> None:
    header = (
        f"{'scenario':<16}{'req/s':>8}{'p50':>7}{'p95':>7}{'p99':>7}{'err':>6}{'ceiling':>9}{'ratio':>7}"
        f"{'RT/req':>7}{'xact':>6}{'appCPU':>8}{'dbCPU':>7}  goals"
    )
    print()
    print(header)
    print("-" * len(header))
    rt_key = {"uniform": "transfer", "hot": "transfer"}
    for name in SCENARIOS:
        row = results.get(name)
        if row is None:
            continue
        met = row["goals"]["met"]
        verdict = "ok" if row["goals"]["all_met"] else "MISSED " + ",".join(k for k, v in met.items() if not v)
        if name == "reconcile":
            print(
                f"{name:<16}{row['seconds']:>7.1f}s  CPU {row['cpu_s']} s (PostgreSQL {row.get('db_cpu_s')} s), "
                f"peak RSS {row['peak_rss_mb']} MB, {row['transactions']:,} transactions, ok={row['ok']}, "
                f"ceiling {row['ceiling_tps']} tps  {verdict}"
            )
            if cp := row.get("after_checkpoint"):
                print(
                    f"{'':<16}after a checkpoint taken in {cp['seconds']} s (CPU {cp['cpu_s']} s, "
                    f"PostgreSQL {cp['db_cpu_s']} s{', cached' if cp.get('cached') else ''})"
                )
            continue
        rt = round_trips.get(rt_key.get(name, name), {}).get("round_trips_per_request", "")
        print(
            f"{name:<16}{row['rps']:>8.1f}{row['p50_ms']:>7.1f}{row['p95_ms']:>7.1f}{row['p99_ms']:>7.1f}"
            f"{row['errors']:>6}{row['ceiling_tps']:>9.1f}{row['ratio']:>7.3f}{rt!s:>7}{row['db_xacts_per_request']:>6}"
            f"{row['app_cpu_ms_per_request']:>8.2f}{row['db_cpu_ms_per_request']:>7.2f}  {verdict}"
        )
    if row := results.get("hold_capture"):
        print(
            f"{'hold_capture':<16}{row['pairs_per_s']} pairs/s (hold placed + captured), pair ratio "
            f"{row['pair_ratio']}, app/DB CPU ms per pair {row['app_cpu_ms_per_pair']}/{row['db_cpu_ms_per_pair']}, "
            f"round trips per pair {row.get('db_round_trips_per_pair', '')}, {row['holds_left_active']} left active"
        )
    for name, reason in (skipped or {}).items():
        print(f"{name:<16}skipped: {reason}")
    for name in SCENARIOS:
        one = results.get(name, {}).get("single_connection")
        if one:
            print(
                f"{name:<16}one connection: {one['rps']} req/s, "
                f"p50/p95/p99 {one['p50_ms']}/{one['p95_ms']}/{one['p99_ms']} ms"
            )
    print("latency in ms; err = non-2xx + socket errors; ratio = req/s / ceiling tps measured right after;")
    print("RT/req = database round trips per request (wire count); xact = database transactions per request;")
    print("appCPU/dbCPU = gunicorn workers' / PostgreSQL backends' CPU ms per request.")
    if final:
        print(
            f"\nreconcile of {final['database']} after the load: ok={final['ok']} in {final['seconds']} s "
            f"({final['transactions']:,} transactions; {final.get('acknowledged_transfers', 0):,} transfers "
            f"acknowledged with 2xx, {final.get('recorded_transfers', 0):,} recorded)"
        )


def markdown(document: dict) -> str:
    """The figures as Markdown tables, for docs/benchmarks.md."""
    results, rts, m = document["scenarios"], document["round_trips"], document["machine"]
    rt_key = {"uniform": "transfer", "hot": "transfer"}
    lines = [
        f"Run {document['generated_at']} on commit `{document['git']['commit']}` "
        f"({document['git']['dirty_files']} uncommitted files in the tree), `{document['command']}`.",
        "",
        "| scenario | req/s | p50 ms | p95 ms | p99 ms | errors | ceiling tps (right after) | ratio | goal "
        "| round trips/req | DB xacts/req | app CPU ms/req | DB CPU ms/req | machine busy | others' CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in SCENARIOS:
        row = results.get(name)
        if row is None or name == "reconcile":
            continue
        goal = ", ".join(f"{k} {'ok' if v else '**missed**'}" for k, v in row["goals"]["met"].items())
        rt = rts.get(rt_key.get(name, name), {}).get("round_trips_per_request", "–")
        lines.append(
            f"| {name} | {row['rps']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | {row['errors']} "
            f"| {row['ceiling_tps']} (n={row['ceiling_nwallets']}) | {row['ratio']} | {goal} | {rt} "
            f"| {row['db_xacts_per_request']} | {row['app_cpu_ms_per_request']} | {row['db_cpu_ms_per_request']} "
            f"| {row['machine_busy_pct']} % | {row['other_cpu_s']} |"
        )
    if row := results.get("hold_capture"):
        lines += [
            "",
            "| hold_capture | pairs/s | pair ratio | app CPU ms/pair | DB CPU ms/pair | round trips/pair "
            "| holds placed / captured (2xx) | left active |",
            "|---|---:|---:|---:|---:|---:|---|---:|",
            f"| a hold placed, then captured by its payee | {row['pairs_per_s']} | {row['pair_ratio']} "
            f"| {row['app_cpu_ms_per_pair']} | {row['db_cpu_ms_per_pair']} | {row.get('db_round_trips_per_pair', '–')} "
            f"| {row['holds_ok']:,} / {row['captures_ok']:,} | {row['holds_left_active']} |",
        ]
    for name, reason in document.get("skipped", {}).items():
        lines += ["", f"Scenario `{name}` skipped: {reason}."]
    singles = [(n, results[n]["single_connection"]) for n in SCENARIOS if "single_connection" in results.get(n, {})]
    if singles:
        lines += [
            "",
            "| same request, one connection | req/s | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {n} | {one['rps']} | {one['p50_ms']} | {one['p95_ms']} | {one['p99_ms']} | {one['errors']} |"
            for n, one in singles
        ]
    if "reconcile" in results:
        r = results["reconcile"]
        lines += [
            "",
            "| reconcile | transactions | history rows | wall s | CPU s (user + sys) | PostgreSQL CPU s | peak RSS MB "
            "| ok | goal ≤ 60 s | load average | ceiling right after |",
            "|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|",
            f"| `manage.py reconcile --json` | {r['transactions']:,} | {r['balance_history_rows']:,} | {r['seconds']} "
            f"| {r['cpu_s']} | {r.get('db_cpu_s')} | {r['peak_rss_mb']} | {r['ok']} "
            f"| {'ok' if r['goals']['met']['seconds'] else '**missed**'} | {r.get('loadavg_before')} "
            f"| {r['ceiling_tps']} tps |",
        ]
        if cp := r.get("after_checkpoint"):
            lines += [
                f"| after `{cp['command']}` ({'cached, ' if cp.get('cached') else ''}taken {cp['taken_at']}) "
                f"| {cp['checkpoint']['transaction_count']:,} | | {cp['seconds']} | {cp['cpu_s']} | {cp['db_cpu_s']} "
                f"| {cp['peak_rss_mb']} | | | {cp['loadavg_before']} | |",
            ]
    final = document.get("final_reconcile")
    if final:
        lines += [
            "",
            f"Final reconcile of `{final['database']}` after the load: ok={final['ok']} in {final['seconds']} s, "
            f"peak RSS {final['peak_rss_mb']} MB, {final['transactions']:,} transactions; "
            f"{final['acknowledged_transfers']:,} transfers answered 2xx, {final['recorded_transfers']:,} recorded "
            f"(at most {final['unanswered_bound']} may be recorded without an answer: requests in flight when wrk "
            f"stopped), consistent: {final['transfers_match']}.",
        ]
        for kind, check in final.get("holds", {}).items():
            lines[-1] += (
                f" {kind.capitalize()}: {check['acknowledged']:,} answered 2xx, {check['recorded']:,} recorded "
                f"(at most {check['unanswered_bound']} without an answer)."
            )
    if rts:
        lines += [
            "",
            "| request | round trips | app CPU ms, one request at a time | of which user |",
            "|---|---:|---:|---:|",
        ]
        for name, rt in rts.items():
            lines.append(
                f"| {name} | {rt['round_trips_per_request']} | {rt['app_cpu_ms_sequential']} "
                f"| {rt['app_user_cpu_ms_sequential']} |"
            )
            for label, part in rt.get("by_label", {}).items():
                lines.append(
                    f"| {name}: {label} | {part['round_trips_per_request']} | {part['app_cpu_ms_sequential']} "
                    f"| {part['app_user_cpu_ms_sequential']} |"
                )
        for name, rt in rts.items():
            examples = {f"{name}: {k}": v["example_request"] for k, v in rt.get("by_label", {}).items()}
            for title, example in examples.items() or {name: rt["example_request"]}.items():
                if example:
                    lines += ["", f"Statements of one `{title}` request, in order:", ""]
                    lines += [f"{i}. `{s[:150]}`" for i, s in enumerate(example, 1)]
    lines += ["", "Ceilings measured during the run (pgbench, each right after the API run it is named after):", ""]
    lines += ["| after | nwallets | tps | p50 ms | p99 ms | machine busy |", "|---|---:|---:|---:|---:|---:|"]
    lines += [
        f"| {c['label']} | {c['nwallets']} | {c['tps']} | {c['p50_ms']} | {c['p99_ms']} | {c['machine_busy_pct']} % |"
        for c in document["ceilings"]
    ]
    lines += [
        "",
        f"Machine: {m['nproc']} vCPU ({m['cpu_model']}), {m['memory_gb']} GB, PostgreSQL {m['postgresql']}, "
        f"Python {m['python']}, {m['wrk']}; load average at start {' '.join(m['loadavg_at_start'])}.",
    ]
    return "\n".join(lines) + "\n"
