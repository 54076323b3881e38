"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis), against a live server.

Every check schemathesis has runs (``--checks all``): no 5xx, responses conform to the declared status
codes, content types, headers and schemas, schema-violating requests are refused, schema-valid ones are
not refused as invalid, authentication is enforced (``ignored_auth``) and one user's objects are not
served to another (``object_level_authorization``, with two peer users). Three passes: a normal user
over every operation, a staff member over the staff operations, and logout last (it revokes tokens).
"""

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.live import BIN, live_api

ROOT = Path(__file__).resolve().parents[2]

MAX_EXAMPLES = 10
# Operations whose schema-valid inputs still meet rules the schema cannot state (password policy,
# "exactly one of to_user_id / to_username", per-currency decimals, balances, unknown currency codes,
# an unknown refresh token): a 400 there is the documented contract answer, not a rejected valid request.
SEMANTIC_400 = [
    "POST /users",
    "POST /auth/login",
    "POST /auth/refresh",
    "POST /users/me/password",
    "POST /wallet/transfer",
    "POST /wallets",
    # An instant PostgreSQL cannot hold (year 1 with an offset); a statement's window (from before to, at
    # most 366 days) and its cursor (signed: a generated one is a forgery).
    "GET /wallet/{user_id}",
    "GET /wallet/{user_id}/statement",
    "POST /deposits",
    "POST /withdrawals",
    "GET /users/lookup",
    "GET /transactions/{user_id}",
    "GET /audit/balance-history",
    "GET /wallet/{user_id}/stats",  # window at most 3660 days
    # A cursor these lists did not issue (signed: a generated one is a forgery), or both paging modes at once.
    "GET /holds",
    "GET /withdrawal-requests",
    # Available money, the payee not the payer, at most what remains of a hold; and (all of them) a key
    # already used with another body or on another hold or request.
    "POST /holds",
    "POST /holds/{hold_id}/capture",
    "POST /holds/{hold_id}/void",
    "POST /withdrawal-requests",
    "POST /withdrawal-requests/{request_id}/approve",
    "POST /withdrawal-requests/{request_id}/reject",
    "POST /withdrawal-requests/{request_id}/cancel",
]
# 422 too: a generated Idempotency-Key that repeats one already used with another body is
# IDEMPOTENCY_KEY_MISMATCH (the IETF draft), which no schema can rule out.
ACCEPTED_WITH_400 = ["2xx", "3xx", "400", "401", "403", "404", "409", "422", "429"]


def _toml(value) -> str:
    return json.dumps(value)


def _config(tmp: Path, *, user: str, peers: list[str], parameters: dict, operations: list[dict]) -> Path:
    lines = [
        f"request-timeout = {_toml(15)}",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        # Negative cases come from the coverage and fuzzing phases. In the stateful phase a value taken
        # from a link (e.g. user_id from /users/me) replaces the mutated one, and the valid request that
        # results is then reported as "schema-violating request accepted": a false positive of the tool.
        "[phases.stateful.generation]",
        f"mode = {_toml('positive')}",
        "[auth.wfc]",
        f"path = {_toml(str(tmp / 'wfc.json'))}",
        f"user = {_toml(user)}",
        *([f"peers = {_toml(peers)}"] if len(peers) > 1 else []),
        "[parameters]",
        *(f"{_toml(k)} = {_toml(v)}" for k, v in parameters.items()),
    ]
    for operation in operations:
        lines.append("[[operations]]")
        lines += [f"{key} = {_toml(value)}" for key, value in operation.items()]
    for name in SEMANTIC_400:
        lines += ["[[operations]]", f"include-name = {_toml(name)}"]
        lines.append(f"checks.positive_data_acceptance.expected-statuses = {_toml(ACCEPTED_WITH_400)}")
    path = tmp / f"schemathesis-{user}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(api, config: Path, seed: int, tmp: Path, name: str, *filters: str) -> dict:
    report = tmp / f"{name}.json"
    url = f"http://127.0.0.1:{api.server.port}"
    started = time.perf_counter()
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "--config-file",
            str(config),
            "--no-color",
            "run",
            f"{url}/openapi.json",
            "--url",
            url,
            "--checks",
            "all",
            "--seed",
            str(seed),
            "--workers",
            "2",
            "--report",
            "json",
            "--report-json-path",
            str(report),
            *filters,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.perf_counter() - started
    (tmp / f"{name}.log").write_text(result.stdout + result.stderr)
    summary = result.stdout[result.stdout.rfind("SUMMARY") :] if "SUMMARY" in result.stdout else result.stdout[-3000:]
    print(f"--- pass {name}: exit {result.returncode} in {seconds:.0f}s\n{summary}")
    return {"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr, "seconds": seconds}


@pytest.mark.soak
def test_the_api_passes_every_schemathesis_check_from_its_own_schema(live_template, rng, tmp_path):
    with live_api(live_template, "fuzz") as api:
        alice, bob = api.seed(["alice", "bob"], funds={"USDT": "1000", "BTC": "1"})
        (staff,) = api.seed(["staffer"], staff=True)
        sent = api.http.post("/wallet/transfer", {"to_user_id": bob["id"], "amount": "1"}, token=alice["token"])
        assert sent.status == 200
        identities = [alice, bob, staff]
        (tmp_path / "wfc.json").write_text(
            json.dumps(
                {
                    "auth": [
                        {
                            "name": user["username"],
                            "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {user['token']}"}],
                        }
                        for user in identities
                    ]
                }
            )
        )
        seed = rng.randrange(2**31)
        print(f"schemathesis seed {seed}")
        # CPython 3.11.7's ast module trips over hypothesis' lambda-source lookup in this operation's
        # coverage phase (SystemError "AST constructor recursion depth mismatch", a tool crash, not a
        # response); its other phases still run.
        tool_workaround = {"include-name": "GET /currencies/{id}", "phases.coverage.enabled": False}
        users = _config(
            tmp_path,
            user="alice",
            peers=["alice", "bob"],
            # A real hash, so receipts are reached; user ids come from the stateful phase's links (/users/me).
            parameters={"path.tx_hash": sent.json()["hash"]},
            operations=[tool_workaround],
        )
        staff_config = _config(
            tmp_path,
            user="staffer",
            peers=["staffer"],
            parameters={"body.user_id": alice["id"], "query.user_id": alice["id"]},
            operations=[tool_workaround],
        )
        runs = [
            _run(api, users, seed, tmp_path, "users", "--exclude-name", "POST /auth/logout"),
            _run(
                api,
                staff_config,
                seed,
                tmp_path,
                "staff",
                "--include-name",
                "POST /deposits",
                "--include-name",
                "POST /withdrawals",
                "--include-name",
                "GET /audit/balance-history",
            ),
            _run(api, users, seed, tmp_path, "logout", "--include-name", "POST /auth/logout"),
        ]
        errors_5xx = api.server.log_text().count('"status_code": 500')
        reconcile = api.reconcile()

    print(f"seed={seed} seconds={[round(r['seconds']) for r in runs]} total={sum(r['seconds'] for r in runs):.0f}s")
    for run in runs:
        assert run["returncode"] == 0, run["stdout"][-12000:] + run["stderr"][-3000:]
    assert errors_5xx == 0
    assert reconcile.returncode == 0, reconcile.stdout


@pytest.mark.soak
def test_a_stock_schemathesis_run_finds_nothing(live_template):
    """``st run`` exactly as an outside reviewer runs it from a clone: default settings (no seed), every
    check, one logged-in user's token; only logout and password change, which revoke that token, are left
    out. The schema must say exactly what the API accepts. The repository's ``schemathesis.toml`` is read as
    it would be for the reviewer; its allowances are the seed contract's 400s on POST /wallet/transfer
    (same account, balance, per-currency limits) and their like on the hold and withdrawal-request POSTs,
    which no schema can state."""
    with live_api(live_template, "stock") as api:
        alice, _bob = api.seed(["alice", "bob"], funds={"USDT": "1000", "BTC": "1"})
        url = f"http://127.0.0.1:{api.server.port}"
        started = time.perf_counter()
        result = subprocess.run(
            [
                str(BIN / "schemathesis"),
                "--no-color",
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "-H",
                f"Authorization: Bearer {alice['token']}",
                "--exclude-name",
                "POST /auth/logout",
                "--exclude-name",
                "POST /users/me/password",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
        )
        seconds = time.perf_counter() - started
        errors_5xx = api.server.log_text().count('"status_code": 500')
        reconcile = api.reconcile()

    tail = result.stdout[result.stdout.rfind("FAILURES") :] if "FAILURES" in result.stdout else result.stdout[-3000:]
    print(f"--- stock run: exit {result.returncode} in {seconds:.0f}s\n{tail[-6000:]}")
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
    assert errors_5xx == 0
    assert reconcile.returncode == 0, reconcile.stdout
