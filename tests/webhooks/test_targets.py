"""Where a webhook may go: https to public addresses in production; loopback only where allowed."""

import pytest

from wallet_project.core import errors
from webhooks.targets import check_target, parse_target, resolve_target

PUBLIC = "https://93.184.215.14/hook"  # a literal public address: checked without DNS


def refused(url: str) -> str:
    with pytest.raises(errors.WebhookTargetForbidden) as caught:
        check_target(url)
    assert caught.value.code == "WEBHOOK_TARGET_FORBIDDEN" and caught.value.status_code == 400
    return caught.value.message


def test_a_public_https_address_is_accepted_with_its_port_and_query():
    target = check_target("https://93.184.215.14:8443/in?x=1")
    assert (target.host, target.port, target.path, target.host_header) == (
        "93.184.215.14",
        8443,
        "/in?x=1",
        "93.184.215.14:8443",
    )
    assert check_target(PUBLIC).port == 443


@pytest.mark.parametrize("url", ["http://93.184.215.14/hook", "ftp://93.184.215.14/", "file:///etc/passwd", "//x/"])
def test_production_takes_https_only(url):
    assert "scheme" in refused(url)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "169.254.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104 - a target refused, not a bind
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[fd00:ec2::254]",  # AWS metadata over IPv6
        "[ff02::1]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::ffff:7f00:1]",
        "[::ffff:169.254.169.254]",
        "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    ],
)
def test_every_non_public_address_is_refused(host):
    message = refused(f"https://{host}/hook")
    assert "address" in message


@pytest.mark.parametrize(
    "host", ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "017700000001", "0x7f.1"]
)
def test_ipv4_in_other_spellings_is_refused(host):
    # Resolvers read these as 127.0.0.1; only dotted decimal is taken.
    assert "dotted decimal" in refused(f"https://{host}/hook")


def test_credentials_in_the_url_are_refused():
    assert "credentials" in refused("https://user:pw@93.184.215.14/hook")
    assert "credentials" in refused("https://93.184.215.14@127.0.0.1/hook")


@pytest.mark.parametrize(
    "url, reason",
    [
        ("https://93.184.215.14:0/", "port 0"),
        ("https://93.184.215.14:99999/", "malformed"),
        ("https://93.184.215.14:abc/", "malformed"),
        ("https:///path", "no host"),
        ("https://93.184.215.14/#frag", "fragment"),
        ("https://exa mple.com/", "printable"),
        ("https://bücher.example/", "ASCII"),
        ("https://93.184.215.14/\n", "printable"),
        ("https://-bad-.example/", "host name"),
        ("https://a..b/", "host name"),
    ],
)
def test_malformed_urls_are_refused(url, reason):
    assert reason in refused(url)


def test_an_overlong_url_is_refused():
    assert "longer than 2048" in refused("https://93.184.215.14/" + "a" * 2048)


def test_a_name_that_resolves_to_loopback_is_refused_at_registration():
    assert "localhost resolves to 127.0.0.1 is a loopback address" in refused("https://localhost/hook")


def test_a_name_that_does_not_resolve_is_refused():
    assert "does not resolve" in refused("https://no-such-host.invalid/hook")


def test_allowing_private_targets_lets_http_and_loopback_through(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    target = check_target("http://127.0.0.1:8080/hook")
    assert (target.scheme, target.port) == ("http", 8080)
    assert resolve_target(parse_target("http://localhost:9/x")) == ["127.0.0.1"] or "::1" in resolve_target(
        parse_target("http://localhost:9/x")
    )
    # Still never credentials, odd spellings or other schemes.
    with pytest.raises(errors.WebhookTargetForbidden):
        check_target("http://u:p@127.0.0.1/")
    with pytest.raises(errors.WebhookTargetForbidden):
        check_target("http://2130706433/")
    with pytest.raises(errors.WebhookTargetForbidden):
        check_target("gopher://127.0.0.1/")


def test_delivery_time_resolution_refuses_a_name_now_pointing_at_loopback(settings):
    # DNS rebinding: registered while it pointed elsewhere, the host now resolves to 127.0.0.1.
    target = parse_target("https://localhost:8443/hook")  # parsing alone does not resolve
    with pytest.raises(errors.WebhookTargetForbidden, match="loopback"):
        resolve_target(target)


@pytest.mark.parametrize("url", ["https://[v1.example.com]/hook", "https://[v7.93.184.215.14]/hook"])
def test_brackets_hold_an_ipv6_address_and_nothing_else(url, settings):
    # urlsplit takes an RFC 3986 "IPvFuture" literal and hands back what is inside as the hostname, a
    # name that would then be resolved; the HTTP client refuses the URL at delivery. Refused here, in
    # production and where private targets are allowed.
    assert "not a valid host name" in refused(url)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    assert "not a valid host name" in refused(url.replace("https:", "http:"))
