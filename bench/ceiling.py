"""The yardstick: pgbench running the reference transfer (bench/reference/) on a freshly loaded schema."""

from __future__ import annotations

import datetime as dt
import math
import re
import subprocess

from bench.config import (
    DB_CEILING,
    PG_HOST,
    PG_PORT,
    PG_USER,
    Options,
    log,
)
from bench.cpu import machine_cpu, run_measured
from bench.db import (
    db_create,
    db_exists,
)


def ceiling(opts: Options, *, nwallets: int, label: str) -> dict:
    """The yardstick, measured now: reload the reference schema and run pgbench for ``duration`` seconds."""
    schema, transfer = opts.yardstick / "reference_schema.sql", opts.yardstick / "reference_transfer.sql"
    if not db_exists(DB_CEILING):
        db_create(DB_CEILING)
    conninfo = ["-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER]
    subprocess.run(
        ["psql", *conninfo, "-q", "-v", "ON_ERROR_STOP=1", "-d", DB_CEILING, "-f", str(schema)],
        check=True,
        capture_output=True,
    )
    prefix = opts.raw / f"pgbench_{label}"
    cmd = [
        "pgbench",
        *conninfo,
        "-n",
        "-c",
        str(opts.connections),
        "-j",
        "1",
        "-T",
        str(opts.duration),
        "-D",
        f"nwallets={nwallets}",
        "-f",
        str(transfer),
        "-l",
        f"--log-prefix={prefix}",
        DB_CEILING,
    ]
    busy0, total0 = machine_cpu()
    code, wall, cpu, _ = run_measured(cmd, env=None, out=opts.raw / f"pgbench_{label}.txt", cwd=opts.raw)
    busy1, total1 = machine_cpu()
    text = (opts.raw / f"pgbench_{label}.txt").read_text()
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
    if code != 0 or not tps:
        raise SystemExit(f"pgbench failed (exit {code}):\n{text[-2000:]}")
    latencies = []
    for path in opts.raw.glob(f"pgbench_{label}.*"):
        if path.suffix != ".txt":
            latencies += [int(line.split()[2]) for line in path.read_text().splitlines() if line.strip()]
            path.unlink()
    latencies.sort()
    failed = re.search(r"number of failed transactions: (\d+)", text)
    result = {
        "label": label,
        "nwallets": nwallets,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tps": round(float(tps.group(1)), 1),
        "transactions": len(latencies),
        "failed": int(failed.group(1)) if failed else 0,
        "p50_ms": _pct_ms(latencies, 50),
        "p95_ms": _pct_ms(latencies, 95),
        "p99_ms": _pct_ms(latencies, 99),
        "pgbench_cpu_s": round(cpu, 2),
        "machine_busy_pct": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
    }
    opts.ceilings.append(result)
    log(f"  ceiling ({label}, nwallets={nwallets}): {result['tps']} tps, p99 {result['p99_ms']} ms")
    return result


def _pct_ms(sorted_us: list[int], pct: float) -> float | None:
    if not sorted_us:
        return None
    return round(sorted_us[min(len(sorted_us) - 1, math.ceil(pct / 100 * len(sorted_us)) - 1)] / 1000, 2)
