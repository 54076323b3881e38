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

# (method, path, token, body[, label]); path may be a function of the previous answer's payload (a
# capture names the hold the request before it placed).
Request = tuple


def count_round_trips(opts: Options, database: str, requests: list[Request], *, warm: int = 3) -> dict:
    """Send ``requests`` one at a time to a 1-worker gunicorn whose database is behind the proxy.

    The first ``warm`` requests open the connection and warm caches and are not counted. Requests with
    a label (the fifth item) are also counted per label.
    """
    with CountingProxy(upstream_host=PG_HOST, upstream_port=PG_PORT) as proxy:
        url_env = {"DATABASE_URL": f"postgres://{PG_USER}@127.0.0.1:{proxy.port}/{database}?sslmode=disable"}
        with Server(
            database=database, logfile=opts.raw / f"gunicorn_roundtrips_{database}.log", GUNICORN_WORKERS="1", **url_env
        ) as server:
            per_request, statements = [], collections.Counter()
            per_label: dict[str, list[tuple[int, float, float]]] = collections.defaultdict(list)
            examples: dict[str, list[str]] = {}
            (worker,) = server.workers()
            cpu0 = user0 = None
            payload: dict = {}
            for i, (method, path, token, body, *rest) in enumerate(requests):
                if callable(path):
                    path = path(payload)
                if i == warm:
                    cpu0, user0 = proc_cpu(worker), proc_cpu(worker, user_only=True)
                proxy.counter.reset()
                before, user_before = proc_cpu(worker), proc_cpu(worker, user_only=True)
                status, payload = http(method, server.url + path, token=token, body=body)
                if not 200 <= status < 300:
                    raise SystemExit(f"round-trip probe {method} {path} answered {status}: {payload}")
                time.sleep(0.05)  # let the proxy thread drain what the worker sent
                trips = proxy.counter.take()
                if i < warm:
                    continue
                per_request.append(len(trips))
                label = rest[0] if rest else ""
                if label:
                    cpu = proc_cpu(worker) - before
                    per_label[label].append((len(trips), cpu, proc_cpu(worker, user_only=True) - user_before))
                for trip in trips:
                    statements[" ; ".join(normalize(s)[:160] for s in trip.statements)] += 1
                if label not in examples:
                    examples[label] = [" ; ".join(normalize(s)[:200] for s in trip.statements) for trip in trips]
            cpu1, user1 = proc_cpu(worker), proc_cpu(worker, user_only=True)
    n = len(per_request)
    out = {
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
        "example_request": examples.get(next(iter(examples), ""), []),
    }
    if per_label:
        # CPU per label from the worker's clock ticks around each request: coarse (10 ms ticks) one by
        # one, fair over the count
        out["by_label"] = {
            label: {
                "requests_counted": len(rows),
                "round_trips_per_request": round(sum(r[0] for r in rows) / len(rows), 2),
                "app_cpu_ms_sequential": round(1000 * sum(r[1] for r in rows) / len(rows), 2),
                "app_user_cpu_ms_sequential": round(1000 * sum(r[2] for r in rows) / len(rows), 2),
                "example_request": examples.get(label, []),
            }
            for label, rows in per_label.items()
        }
    return out


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
    if api_users and "hold_capture" in names:
        tokens = dict(read_tokens(opts.raw / "tokens_uniform.txt"))
        reqs = []
        pairs = 27  # the first two are the warm-up
        for i in range(pairs):
            payer, payee = api_users[(2 * i) % len(api_users)], api_users[(2 * i + 1) % len(api_users)]
            body = {"to_user_id": payee, "currency": "USDT", "amount": "0.000001", "expires_in": 3600}
            reqs.append(("POST", "/holds", tokens[payer], body, "hold"))
            reqs.append(("POST", lambda hold: f"/holds/{hold['id']}/capture", tokens[payee], {}, "capture"))
        log("round trips: hold_capture")
        out["hold_capture"] = count_round_trips(opts, DB_API, reqs, warm=4)
        labels = out["hold_capture"]["by_label"]
        out["hold_capture"]["pairs"] = pairs
        out["hold_capture"]["round_trips_per_pair"] = round(
            labels["hold"]["round_trips_per_request"] + labels["capture"]["round_trips_per_request"], 2
        )
    if hot_user and any(n.startswith("history") or n in opts.read_paths for n in names):
        token = read_tokens(opts.raw / "tokens_history.txt")[0][1]
        last_page = opts.deep_page or math.ceil(opts.reads_hot / opts.page_size)
        for name, page in (("history_page1", 1), ("history_deep", last_page)):
            if name in names:
                log(f"round trips: {name}")
                path = f"/transactions/{hot_user}?page={page}&page_size={opts.page_size}"
                out[name] = count_round_trips(opts, DB_READS, [("GET", path, token, None)] * 33)
        for name in names:
            if name in opts.read_paths:  # pit (33 instants over the span), the statement's first page
                log(f"round trips: {name}")
                reqs = [("GET", path, token, None) for path in opts.read_paths[name]]
                out[name] = count_round_trips(opts, DB_READS, reqs)
    return out
