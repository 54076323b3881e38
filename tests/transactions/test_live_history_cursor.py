"""The history paged by cursor over real HTTP (gunicorn, several workers) while another client keeps transferring."""

import threading
import urllib.parse

from tests.live import live_api, live_template  # noqa: F401 - live_template is a fixture

LIMIT = 5


def test_cursor_pages_of_the_history_stay_exact_while_another_client_transfers(live_template):  # noqa: F811
    with live_api(live_template, "cursor", workers=3) as api:
        alice, bob = api.seed(["alice", "bob"], funds=[{"USDT": "100", "BTC": "1"}, {"USDT": "100"}])
        http = api.http

        def history(**params):
            reply = http.get(f"/transactions/{alice['id']}?{urllib.parse.urlencode(params)}", token=alice["token"])
            assert reply.status == 200, reply.body
            return reply.json()

        for n in range(12):  # USDT both ways and BTC: a history of two wallets
            if n % 3 == 0:
                sender, body = alice, {"to_user_id": bob["id"], "amount": "0.01", "currency": "BTC"}
            else:
                sender, recipient = (alice, bob) if n % 2 else (bob, alice)
                body = {"to_user_id": recipient["id"], "amount": "1", "currency": "USDT"}
            reply = http.post("/wallet/transfer", body, token=sender["token"])
            assert reply.status == 200, reply.body
        existing = [tx["id"] for tx in history(page_size=100)["data"]]
        assert len(existing) == 14  # two deposits and twelve transfers

        # Bob keeps sending to Alice from his own client, committing between every two page reads (and during them).
        sent = threading.Semaphore(0)
        stop = threading.Event()
        failures = []

        def keep_sending():
            while not stop.is_set():
                reply = http.post("/wallet/transfer", {"to_user_id": alice["id"], "amount": "0.1"}, token=bob["token"])
                if reply.status != 200:
                    failures.append(reply.body)
                    return
                sent.release()

        first = history(limit=LIMIT)
        sender = threading.Thread(target=keep_sending, daemon=True)
        sender.start()
        pages, pagination = [first["data"]], first["pagination"]
        try:
            while pagination["has_more"]:
                assert sent.acquire(timeout=30), failures  # one more transfer committed since the last page
                page = history(cursor=pagination["next_cursor"], limit=LIMIT)
                pages.append(page["data"])
                pagination = page["pagination"]
            assert sent.acquire(timeout=30), failures
        finally:
            stop.set()
            sender.join(30)
        assert not failures

        assert pagination == {"next_cursor": None, "has_more": False}
        assert [len(page) for page in pages] == [5, 5, 4]
        assert [tx["id"] for page in pages for tx in page] == existing  # nothing skipped, repeated or added
        fresh = [tx["id"] for tx in history(limit=100)["data"]]
        arrived = fresh[: len(fresh) - len(existing)]
        assert len(arrived) >= len(pages) and fresh[len(arrived) :] == existing  # the new ones lead a fresh read
        assert all(tx["direction"] == "received" for tx in history(limit=len(arrived))["data"])

        # Over the wire too: a modified cursor, someone else's, and both modes at once are refused.
        cursor = history(limit=2)["pagination"]["next_cursor"]
        modified = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
        bobs = http.get(f"/transactions/{bob['id']}?limit=2", token=bob["token"]).json()["pagination"]["next_cursor"]
        for query in [{"cursor": modified}, {"cursor": bobs}, {"cursor": cursor, "page": 2}]:
            reply = http.get(f"/transactions/{alice['id']}?{urllib.parse.urlencode(query)}", token=alice["token"])
            assert (reply.status, reply.code) == (400, "INVALID_REQUEST"), reply.body

        reconcile = api.reconcile()
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
