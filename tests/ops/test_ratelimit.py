import pytest
from rest_framework.test import APIClient

from tests.accounts.factories import PASSWORD
from wallet_project.core import ratelimit

pytestmark = pytest.mark.django_db

CLIENT_A = "198.51.100.10"
CLIENT_B = "198.51.100.20"
PROXY = "10.0.0.2"


def limit_headers(response) -> tuple[int, int, int]:
    return (
        int(response["X-RateLimit-Limit"]),
        int(response["X-RateLimit-Remaining"]),
        int(response["X-RateLimit-Reset"]),
    )


def login(ip: str, username: str, password: str = "wrong password", **extra):
    return APIClient().post(
        "/auth/login", {"username": username, "password": password}, format="json", REMOTE_ADDR=ip, **extra
    )


def test_the_defaults_are_60_a_minute_and_5_logins(ratelimits, api):
    assert limit_headers(api.get("/currencies"))[:2] == (60, 59)
    assert limit_headers(login(CLIENT_A, "alice"))[:2] == (5, 4)


def test_headers_count_down_to_a_429_with_retry_after_and_the_error_envelope(ratelimits, settings, api):
    settings.RATELIMIT_DEFAULT = "3/m"
    remaining = []
    for _ in range(3):
        response = api.get("/currencies", REMOTE_ADDR=CLIENT_A)
        assert response.status_code == 200
        limit, left, reset = limit_headers(response)
        assert limit == 3 and 0 <= reset <= 60
        remaining.append(left)
    assert remaining == [2, 1, 0]

    blocked = api.get("/currencies", REMOTE_ADDR=CLIENT_A)
    assert blocked.status_code == 429
    assert blocked["Content-Type"] == "application/problem+json"
    body = blocked.json()
    assert body["code"] == "RATE_LIMIT_EXCEEDED" and body["status"] == 429
    assert body["trace_id"] == blocked["X-Trace-ID"]
    assert limit_headers(blocked)[:2] == (3, 0)
    assert 1 <= int(blocked["Retry-After"]) <= 60
    assert int(blocked["Retry-After"]) == max(limit_headers(blocked)[2], 1)


def test_the_budget_comes_back_when_the_window_ends(ratelimits, settings, api):
    settings.RATELIMIT_DEFAULT = "1/m"
    api.get("/currencies", REMOTE_ADDR=CLIENT_A)
    blocked = api.get("/currencies", REMOTE_ADDR=CLIENT_A)
    assert blocked.status_code == 429
    ratelimits.now += int(blocked["Retry-After"]) + 1
    assert api.get("/currencies", REMOTE_ADDR=CLIENT_A).status_code == 200


def test_anonymous_clients_are_counted_per_address(ratelimits, settings, api):
    settings.RATELIMIT_DEFAULT = "2/m"
    for _ in range(2):
        api.get("/currencies", REMOTE_ADDR=CLIENT_A)
    assert api.get("/currencies", REMOTE_ADDR=CLIENT_A).status_code == 429
    fresh = api.get("/currencies", REMOTE_ADDR=CLIENT_B)
    assert fresh.status_code == 200 and limit_headers(fresh)[1] == 1


def test_authenticated_clients_are_counted_per_user_not_per_address(ratelimits, settings, user_factory, client_for):
    settings.RATELIMIT_DEFAULT = "2/m"
    alice, bob = user_factory(), user_factory()
    as_alice = client_for(alice)
    # Alice moving between addresses keeps one budget...
    assert as_alice.get("/wallets", REMOTE_ADDR=CLIENT_A).status_code == 200
    assert as_alice.get("/wallets", REMOTE_ADDR=CLIENT_B).status_code == 200
    assert as_alice.get("/wallets", REMOTE_ADDR="203.0.113.99").status_code == 429
    # ...and neither Bob behind her address nor an anonymous client there is blocked by it.
    assert client_for(bob).get("/wallets", REMOTE_ADDR=CLIENT_A).status_code == 200
    assert APIClient().get("/currencies", REMOTE_ADDR=CLIENT_A).status_code == 200


def test_login_is_limited_per_username_across_addresses(ratelimits, settings):
    settings.RATELIMIT_LOGIN = "3/m"
    for i in range(3):
        assert login(f"198.51.100.{i + 1}", "alice").status_code == 401
    blocked = login("198.51.100.50", "ALICE")  # usernames are case-insensitive
    assert blocked.status_code == 429 and blocked.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert "Retry-After" in blocked
    assert login("198.51.100.50", "bob").status_code == 401


def test_login_is_limited_per_address_across_usernames(ratelimits, settings):
    settings.RATELIMIT_LOGIN = "3/m"
    for name in ("alice", "bob", "carol"):
        assert login(CLIENT_A, name).status_code == 401
    assert login(CLIENT_A, "dave").status_code == 429
    assert login(CLIENT_B, "dave").status_code == 401


def test_the_right_password_is_refused_too_once_the_username_is_blocked(ratelimits, settings, user_factory):
    settings.RATELIMIT_LOGIN = "2/m"
    user_factory(username="erin")
    for i in range(2):
        login(f"198.51.100.{i + 1}", "erin")
    response = login(CLIENT_B, "erin", password="correct horse battery")
    assert response.status_code == 429 and "token" not in response.json()


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_gets_no_fresh_budget(ratelimits, settings, api):
    settings.RATELIMIT_DEFAULT = "2/m"
    settings.TRUSTED_PROXIES = [PROXY]
    for i in range(2):
        api.get("/currencies", REMOTE_ADDR=CLIENT_A, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    blocked = api.get("/currencies", REMOTE_ADDR=CLIENT_A, HTTP_X_FORWARDED_FOR="192.0.2.77")
    assert blocked.status_code == 429


def test_behind_a_trusted_proxy_the_client_is_the_rightmost_untrusted_address(ratelimits, settings, api):
    settings.RATELIMIT_DEFAULT = "2/m"
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    # The client forges entries on the left; the proxies append the address they really saw.
    for forged in ("192.0.2.1", "192.0.2.2"):
        response = api.get("/currencies", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"{forged}, {CLIENT_A}, 10.0.0.7")
        assert response.status_code == 200
    blocked = api.get("/currencies", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"192.0.2.3, {CLIENT_A}")
    assert blocked.status_code == 429
    other_client = api.get("/currencies", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT_B)
    assert other_client.status_code == 200


def test_client_ip_rules(rf, settings):
    settings.TRUSTED_PROXIES = [PROXY]

    def ip(remote, forwarded=None):
        meta = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            meta["HTTP_X_FORWARDED_FOR"] = forwarded
        return ratelimit.client_ip(rf.get("/", **meta))

    assert ip(CLIENT_A, "192.0.2.1") == CLIENT_A  # untrusted peer: its header is ignored
    assert ip(PROXY, f"192.0.2.1, {CLIENT_A}") == CLIENT_A
    assert ip(PROXY) == PROXY  # a proxy that forwarded nothing is the client
    assert ip(PROXY, f"{CLIENT_A}, not-an-ip") == PROXY  # garbage: believe no one further left
    assert ip("::ffff:198.51.100.10") == CLIENT_A


def test_one_ipv6_prefix_shares_a_budget(ratelimits, settings, api):
    settings.RATELIMIT_DEFAULT = "1/m"
    assert api.get("/currencies", REMOTE_ADDR="2001:db8:1:2::1").status_code == 200
    assert api.get("/currencies", REMOTE_ADDR="2001:db8:1:2::ffff").status_code == 429
    assert api.get("/currencies", REMOTE_ADDR="2001:db8:1:3::1").status_code == 200


def test_user_lookup_has_its_own_stricter_budget(ratelimits, settings, user_factory, client_for):
    settings.RATELIMIT_LOOKUP = "2/m"
    alice = user_factory(username="alice")
    client = client_for(alice)
    for _ in range(2):
        response = client.get("/users/lookup", {"username": "alice"})
        assert response.status_code == 200 and response["X-RateLimit-Limit"] == "2"
    assert client.get("/users/lookup", {"username": "alice"}).status_code == 429
    me = client.get("/users/me")
    assert me.status_code == 200 and me["X-RateLimit-Limit"] == "60"


def test_sign_up_is_limited_per_address(ratelimits, settings, api):
    settings.RATELIMIT_SIGNUP = "2/m"
    for _ in range(2):
        assert api.post("/users", {"username": "x"}, format="json", REMOTE_ADDR=CLIENT_A).status_code == 400
    blocked = api.post("/users", {"username": "x"}, format="json", REMOTE_ADDR=CLIENT_A)
    assert blocked.status_code == 429 and blocked.json()["code"] == "RATE_LIMIT_EXCEEDED"


def test_health_and_ready_are_never_limited(ratelimits, settings, api):
    settings.RATELIMIT_DEFAULT = "1/m"
    for _ in range(3):
        for path in ("/health", "/ready"):
            response = api.get(path)
            assert response.status_code == 200
            assert "X-RateLimit-Limit" not in response


def test_the_admin_login_form_is_limited_per_username(ratelimits, settings, client):
    settings.RATELIMIT_LOGIN = "2/m"
    for i in range(2):
        response = client.post(
            "/admin/login/", {"username": "root", "password": "guess"}, REMOTE_ADDR=f"198.51.100.{i + 1}"
        )
        assert response.status_code == 200  # the form again, with an error
    blocked = client.post("/admin/login/", {"username": "root", "password": "guess"}, REMOTE_ADDR=CLIENT_B)
    assert blocked.status_code == 429 and blocked.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert blocked["X-RateLimit-Remaining"] == "0"


def test_a_cache_outage_keeps_the_api_up_but_closes_login(ratelimits, monkeypatch, api):
    def unavailable(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(ratelimit, "get_usage", unavailable)
    assert api.get("/currencies").status_code == 200
    response = login(CLIENT_A, "alice")
    assert response.status_code == 503 and response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert "Retry-After" in response


def test_nothing_is_limited_when_ratelimit_enable_is_off(settings, api):
    settings.RATELIMIT_ENABLE = False
    settings.RATELIMIT_DEFAULT = "1/m"
    for _ in range(3):
        response = api.get("/currencies")
        assert response.status_code == 200 and "X-RateLimit-Limit" not in response


# --- Every spelling that logs in as an account counts against that account ---------------------


def login_json(ip: str, body: dict):
    return APIClient().post("/auth/login", body, format="json", REMOTE_ADDR=ip)


@pytest.mark.parametrize("username", [31337, 31337.0, True, None, ["31337"], {"name": "31337"}])
def test_a_username_that_is_not_a_string_is_400_and_never_logs_in(ratelimits, user_factory, username):
    user_factory(username="31337")
    response = login_json(CLIENT_A, {"username": username, "password": PASSWORD})
    assert response.status_code == 400 and response.json()["code"] == "INVALID_REQUEST"
    assert "token" not in response.json()


def test_a_number_as_username_does_not_escape_the_per_username_budget(ratelimits, settings, user_factory):
    settings.RATELIMIT_LOGIN = "2/m"
    user_factory(username="31337")
    for i in range(2):
        assert login(f"198.51.100.{i + 1}", "31337").status_code == 401
    response = login_json(CLIENT_B, {"username": 31337, "password": PASSWORD})
    assert response.status_code in (400, 429) and "token" not in response.json()


# Spellings PostgreSQL's UPPER() (the iexact lookup) matches to "iris5" but casefold() does not:
# a dotless ı, and a long ſ for the s.
SPELLINGS = ["IRIS5", "irıs5", "iriſ5", " iris5 "]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_each_spelling_that_logs_in_as_an_account_logs_in_as_it(ratelimits, user_factory, spelling):
    iris = user_factory(username="iris5")
    response = login(CLIENT_A, spelling, password=PASSWORD)
    assert response.status_code == 200 and response.json()["user_id"] == iris.pk


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_an_account_shares_its_login_budget(ratelimits, settings, user_factory, spelling):
    settings.RATELIMIT_LOGIN = "2/m"
    user_factory(username="iris5")
    assert login("198.51.100.1", "iris5").status_code == 401
    assert login("198.51.100.2", spelling).status_code == 401
    for blocked in (login(CLIENT_A, spelling, password=PASSWORD), login(CLIENT_B, "iris5", password=PASSWORD)):
        assert blocked.status_code == 429 and blocked.json()["code"] == "RATE_LIMIT_EXCEEDED"


def test_unknown_usernames_are_still_limited_per_username(ratelimits, settings):
    settings.RATELIMIT_LOGIN = "2/m"
    for i in range(2):
        assert login(f"198.51.100.{i + 1}", "nobody7").status_code == 401
    blocked = login(CLIENT_B, "NOBODY7")
    assert blocked.status_code == 429 and blocked.json()["code"] == "RATE_LIMIT_EXCEEDED"


@pytest.mark.parametrize("spelling", ["irıs5", "ｉｒｉｓ5"])  # the form also NFKC-normalises: fullwidth letters
def test_the_admin_login_form_shares_the_accounts_budget_for_every_spelling(
    ratelimits, settings, user_factory, client, spelling
):
    settings.RATELIMIT_LOGIN = "2/m"
    user_factory(username="iris5", is_staff=True)
    for i in range(2):
        assert login(f"198.51.100.{i + 1}", "iris5").status_code == 401
    blocked = client.post("/admin/login/", {"username": spelling, "password": PASSWORD}, REMOTE_ADDR=CLIENT_B)
    assert blocked.status_code == 429 and blocked.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert "_auth_user_id" not in client.session


def test_the_admin_login_form_counts_against_the_api_budget_too(ratelimits, settings, user_factory, client):
    settings.RATELIMIT_LOGIN = "2/m"
    user_factory(username="iris5", is_staff=True)
    for i, spelling in enumerate(["irıs5", "ｉｒｉｓ5"]):
        response = client.post(
            "/admin/login/", {"username": spelling, "password": "guess"}, REMOTE_ADDR=f"198.51.100.{i + 1}"
        )
        assert response.status_code == 200
    blocked = login(CLIENT_B, "iris5", password=PASSWORD)
    assert blocked.status_code == 429 and blocked.json()["code"] == "RATE_LIMIT_EXCEEDED"


# --- The password change checks a password: it gets the login budget --------------------------


def change_password(client, ip: str, current: str = "not the password"):
    body = {"current_password": current, "new_password": "a brand new passphrase"}
    return client.post("/users/me/password", body, format="json", REMOTE_ADDR=ip)


def test_guessing_the_current_password_with_a_token_gets_the_login_budget(
    ratelimits, settings, user_factory, client_for
):
    settings.RATELIMIT_LOGIN = "2/m"
    client = client_for(user_factory(username="gina"))
    for i in range(2):  # from many addresses: the account's counter, not only the address's
        response = change_password(client, f"198.51.100.{i + 1}")
        assert response.status_code == 401 and response.json()["code"] == "INVALID_CREDENTIALS"
        assert response["X-RateLimit-Limit"] == "2"
    blocked = change_password(client, CLIENT_B, current=PASSWORD)
    assert blocked.status_code == 429 and blocked.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert "Retry-After" in blocked


def test_the_password_change_and_the_login_share_the_accounts_budget(ratelimits, settings, user_factory, client_for):
    settings.RATELIMIT_LOGIN = "2/m"
    client = client_for(user_factory(username="gina"))
    assert login("198.51.100.1", "GINA").status_code == 401
    assert change_password(client, "198.51.100.2").status_code == 401
    assert change_password(client, CLIENT_B, current=PASSWORD).status_code == 429
    assert login(CLIENT_A, "gina", password=PASSWORD).status_code == 429


def test_a_counter_outage_closes_the_password_change(ratelimits, monkeypatch, user_factory, client_for):
    client = client_for(user_factory())

    def unavailable(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(ratelimit, "get_usage", unavailable)
    response = change_password(client, CLIENT_A, current=PASSWORD)
    assert response.status_code == 503 and response.json()["code"] == "SERVICE_UNAVAILABLE"


def test_a_key_that_cannot_be_utf8_is_counted_not_reported_as_a_store_outage(ratelimits, settings, rf, caplog):
    # The JSON parser refuses lone surrogates first; this is the limiter's own guard, should one get past.
    settings.RATELIMIT_LOGIN = "1/m"
    request = rf.post("/auth/login", REMOTE_ADDR=CLIENT_A)
    request.data = {"username": "odd\ud800name"}
    assert ratelimit.check_scope(request, "login").remaining == 0
    with pytest.raises(ratelimit.errors.RateLimitExceeded):
        ratelimit.check_scope(request, "login")
    assert "rate limit counters unavailable" not in caplog.text
