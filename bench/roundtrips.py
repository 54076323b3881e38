"""Round trips: a short, sequential run through the counting proxy (bench/pgproxy.py)."""

from __future__ import annotations

import collections
import math
import time

from bench.config import (
    DB_API,
    DB_READS,
    PG_HOST,
    PG_PORT,
    PG_USER,
    Options,
    log,
)
from bench.cpu import proc_cpu
from bench.pgproxy import CountingProxy, normalize
from bench.server import Server, http, read_tokens


def count_round_trips(opts: Options, database: str, requests: list[tuple[str, str, str, dict | None]]) -> dict:
    """Send ``requests`` one at a time to a 1-worker gunicorn whose database is behind the proxy."""
    with CountingProxy(upstream_host=PG_HOST, upstream_port=PG_PORT) as proxy:
        url_env = {"DATABASE_URL": f"postgres://{PG_USER}@127.0.0.1:{proxy.port}/{database}?sslmode=disable"}
        with Server(
            database=database, logfile=opts.raw / f"gunicorn_roundtrips_{database}.log", GUNICORN_WORKERS="1", **url_env
        ) as server:
            per_request, statements = [], collections.Counter()
            example: list[str] = []
            (worker,) = server.workers()
            cpu0 = user0 = None
            for i, (method, path, token, body) in enumerate(requests):
                if i == 3:  # the first requests open the connection and warm caches
                    cpu0, user0 = proc_cpu(worker), proc_cpu(worker, user_only=True)
                proxy.counter.reset()
                status, _ = http(method, server.url + path, token=token, body=body)
                if status != 200:
                    raise SystemExit(f"round-trip probe {method} {path} answered {status}")
                time.sleep(0.05)  # let the proxy thread drain what the worker sent
                trips = proxy.counter.take()
                if i < 3:
                    continue
                per_request.append(len(trips))
                for trip in trips:
                    statements[" ; ".join(normalize(s)[:160] for s in trip.statements)] += 1
                if not example:
                    example = [" ; ".join(normalize(s)[:200] for s in trip.statements) for trip in trips]
            cpu1, user1 = proc_cpu(worker), proc_cpu(worker, user_only=True)
    n = len(per_request)
    return {
        "method": "wire count: PostgreSQL protocol proxy, Query + Sync messages per request, 1 gunicorn worker",
        "requests_counted": n,
        "round_trips_per_request": round(sum(per_request) / n, 2),
        # One request at a time: CPU per request without queueing behind 15 others (50 ms sleeps excluded:
        # the worker is idle then). Includes user and kernel time of the worker.
        "app_cpu_ms_sequential": round(1000 * (cpu1 - cpu0) / n, 2),
        "app_user_cpu_ms_sequential": round(1000 * (user1 - user0) / n, 2),
        "min": min(per_request),
        "max": max(per_request),
        "statements_per_request": {k: round(v / n, 2) for k, v in statements.most_common()},
        "example_request": example,
    }


def round_trip_section(opts: Options, names: list[str], api_users: list[int] | None, hot_user: int | None) -> dict:
    out = {}
    if api_users:
        tokens = dict(read_tokens(opts.raw / "tokens_uniform.txt"))
        reqs = []
        for i in range(53):
            sender, recipient = api_users[(2 * i) % len(api_users)], api_users[(2 * i + 1) % len(api_users)]
            body = {"to_user_id": recipient, "currency": "USDT", "amount": "0.000001"}
            reqs.append(("POST", "/wallet/transfer", tokens[sender], body))
        log("round trips: transfer")
        out["transfer"] = count_round_trips(opts, DB_API, reqs)
        # The floor: gunicorn + the middleware stack + a view that touches nothing.
        out["health"] = count_round_trips(opts, DB_API, [("GET", "/health", "", None)] * 53)
    if hot_user and any(n.startswith("history") for n in names):
        token = read_tokens(opts.raw / "tokens_history.txt")[0][1]
        last_page = opts.deep_page or math.ceil(opts.reads_hot / opts.page_size)
        for name, page in (("history_page1", 1), ("history_deep", last_page)):
            if name in names:
                log(f"round trips: {name}")
                path = f"/transactions/{hot_user}?page={page}&page_size={opts.page_size}"
                out[name] = count_round_trips(opts, DB_READS, [("GET", path, token, None)] * 33)
    return out
