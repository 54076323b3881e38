"""Rate limiting: django-ratelimit counters in the Django cache (Redis when ``REDIS_URL`` is set).

Every DRF view is limited by ``RateLimitThrottle`` (``DEFAULT_THROTTLE_CLASSES``), which runs after
authentication: a client is counted per user once authenticated and per IP address before.
A view picks a stricter budget with ``ratelimit_scope`` (a scope name, or a mapping of viewset
action to scope name; ``None`` exempts the view). Password forms outside DRF (the admin and the
browsable API's session login) get the login budget from ``RateLimitMiddleware``.

The tightest counter of a request is left on the Django request and ``RateLimitMiddleware``
writes it as ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds
until the window resets) on the response, the 429 included, which also carries ``Retry-After``.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_ratelimit.core import get_usage
from rest_framework.throttling import BaseThrottle

from . import errors
from .errors import problem_response

if TYPE_CHECKING:  # annotations only: DRF imports this module while rest_framework.views loads
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger("wallet.ratelimit")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Clients behind one IPv6 prefix (a home or an office) share a budget, as one IPv4 NAT address would.
IPV6_PREFIX = 64
USAGE_ATTR = "ratelimit_usage"
DEFAULT_SCOPE = "default"
# The browsable API and the admin sign in through Django forms, not DRF views.
FORM_LOGIN_VIEWS = {"admin:login", "rest_framework:login"}


# --- Who is the client ---------------------------------------------------------------------------


def _parse_ip(value: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for entry in filter(None, (e.strip() for e in trusted)):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            logger.error("ignoring malformed TRUSTED_PROXIES entry", extra={"entry": entry})
    return tuple(networks)


def _is_trusted(address: IPAddress) -> bool:
    return any(address in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, unless that is a trusted proxy.

    Behind trusted proxies (``TRUSTED_PROXIES``: addresses or networks) it is the right-most
    ``X-Forwarded-For`` entry that is not itself a trusted proxy. Entries left of it were written
    by the client and are ignored, so a forged header cannot buy a fresh budget.
    """
    remote_raw = request.META.get("REMOTE_ADDR", "")
    remote = _parse_ip(remote_raw)
    if remote is None:
        return remote_raw or "unknown"
    if not _is_trusted(remote):
        return str(remote)
    client = remote
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _parse_ip(hop)
        if address is None:
            break  # garbage from the client's side: the last trusted hop is the best we know
        client = address
        if not _is_trusted(address):
            break
    return str(client)


def _ip_bucket(request: HttpRequest) -> str:
    client = client_ip(request)
    address = _parse_ip(client)
    if isinstance(address, ipaddress.IPv6Address):
        return "ip:" + str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False).network_address)
    return f"ip:{client}"


def _client_key(request: Any) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return _ip_bucket(_django_request(request))


def _ip_key(request: Any) -> str:
    return _ip_bucket(_django_request(request))


# The login's username field allows this many characters; anything longer never logs in.
USERNAME_MAX_LENGTH = 150
# Usernames that are not strings are refused by the login (400), but they still share one budget
# rather than none, so that no shape of body escapes the per-username counter.
NOT_A_USERNAME_KEY = "username:!not-a-string"


def _username_key(request: Any) -> str:
    """The per-username login counter: the account the name logs in as, whatever its spelling.

    Counting the text the client sent would give every spelling that logs in as one account (case,
    a dotless ı or a long ſ that PostgreSQL's ``UPPER()`` folds, the NFKC forms the admin form folds)
    a fresh budget. So the name is normalised as the login normalises it and resolved with the
    login's own lookup (``username__iexact``); the counter is the account's, ``account:<pk>``, which
    the password change counts against too. A name that matches no account is counted by its
    casefolded text. Known and unknown names cost the same one query, so timing tells nothing.
    """
    drf = hasattr(request, "data")
    # DRF requests parse their body once (a parse error surfaces as the view's own 400); form
    # posts to the admin carry it in POST.
    data = request.data if drf else request.POST
    username = data.get("username") if isinstance(data, Mapping) else None
    if username is None:
        return ""
    if not isinstance(username, str):
        return NOT_A_USERNAME_KEY
    name = username.strip() if drf else unicodedata.normalize("NFKC", username).strip()  # as UsernameField
    if not name:
        return ""
    account = _account_id(name)
    if account is not None:
        return f"account:{account}"
    return "username:" + name.casefold()[:USERNAME_MAX_LENGTH]


def _account_id(name: str) -> int | None:
    """The id ``get_by_natural_key`` (the login's lookup) would find for ``name``, if any."""
    if len(name) > USERNAME_MAX_LENGTH or "\x00" in name or not _encodable(name):
        return None  # refused by the login form or serializer; PostgreSQL would refuse it outright
    return get_user_model().objects.filter(username__iexact=name).order_by("pk").values_list("pk", flat=True).first()


def _encodable(name: str) -> bool:
    try:
        name.encode()
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        return False
    return True


def _own_account_key(request: Any) -> str:
    """A password check behind a token (the password change) counts against the account's login budget."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    return f"account:{user.pk}"


def _django_request(request: Any) -> HttpRequest:
    return getattr(request, "_request", request)


# --- Budgets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    group: str
    rate_setting: str
    key: Callable[[Any], str]


@dataclass(frozen=True)
class Usage:
    limit: int
    remaining: int
    reset: int
    exceeded: bool


SCOPES: dict[str, tuple[Rule, ...]] = {
    DEFAULT_SCOPE: (Rule("default", "RATELIMIT_DEFAULT", _client_key),),
    # Password guessing is bounded from both sides: one address trying many names, and many
    # addresses trying one name.
    "login": (
        Rule("login:ip", "RATELIMIT_LOGIN", _ip_key),
        Rule("login:username", "RATELIMIT_LOGIN", _username_key),
    ),
    # Checking the current password (a stolen token guessing it) is a login attempt: the same
    # counters, the per-account one shared with the login's.
    "password": (
        Rule("login:ip", "RATELIMIT_LOGIN", _ip_key),
        Rule("login:username", "RATELIMIT_LOGIN", _own_account_key),
    ),
    "lookup": (Rule("lookup", "RATELIMIT_LOOKUP", _client_key),),
    "signup": (Rule("signup", "RATELIMIT_SIGNUP", _ip_key),),
}
# Without a working counter store these fail closed (a guessing window must not open during an
# outage); everything else fails open so that a cache outage is not an API outage.
FAIL_CLOSED_SCOPES = {"login", "password", "signup"}


class CounterUnavailable(Exception):
    pass


def _count(request: Any, rule: Rule) -> Usage | None:
    value = rule.key(request)
    if not value:
        return None
    if not value.isascii():
        # django-ratelimit hashes the key as UTF-8: a key that cannot be encoded (a lone surrogate) is the
        # client's oddity, to be counted like any other, not a counter-store outage.
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    try:
        usage = get_usage(
            _django_request(request),
            group=rule.group,
            key=lambda _group, _request: value,
            rate=getattr(settings, rule.rate_setting),
            increment=True,
        )
    except Exception as exc:  # noqa: BLE001 - a cache outage must not turn into a 500
        raise CounterUnavailable(str(exc)) from exc
    if usage is None:  # RATELIMIT_ENABLE is off
        return None
    if usage["limit"] == 0 and usage["time_left"] == -1:  # django-ratelimit's "cache failed" answer
        raise CounterUnavailable("rate limit counter store failed")
    return Usage(
        limit=usage["limit"],
        remaining=max(usage["limit"] - usage["count"], 0),
        reset=max(usage["time_left"], 0),
        exceeded=usage["should_limit"],
    )


def check_scope(request: Any, scope: str) -> Usage | None:
    """Count one request against every rule of ``scope``; raise ``RateLimitExceeded`` when over.

    The tightest usage is stored on the Django request for the response headers.
    """
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    try:
        usages = [u for u in (_count(request, rule) for rule in SCOPES[scope]) if u is not None]
    except CounterUnavailable as exc:
        logger.error("rate limit counters unavailable", extra={"scope": scope, "error": str(exc)})
        if scope in FAIL_CLOSED_SCOPES:
            raise errors.ServiceUnavailable(headers={"Retry-After": "5"}) from exc
        return None
    if not usages:
        return None
    exceeded = [u for u in usages if u.exceeded]
    # When over, report the counter that blocks longest; otherwise the one closest to blocking.
    usage = max(exceeded, key=lambda u: u.reset) if exceeded else min(usages, key=lambda u: (u.remaining, -u.reset))
    setattr(_django_request(request), USAGE_ATTR, usage)
    if usage.exceeded:
        raise errors.RateLimitExceeded(headers={"Retry-After": str(max(usage.reset, 1))})
    return usage


def view_scope(view: Any) -> str | None:
    scope = getattr(view, "ratelimit_scope", DEFAULT_SCOPE)
    if isinstance(scope, Mapping):
        return scope.get(getattr(view, "action", None), DEFAULT_SCOPE)
    return scope


class RateLimitThrottle(BaseThrottle):
    """DRF throttle over django-ratelimit's counters; raises the 429 itself so it carries its headers."""

    def allow_request(self, request: Request, view: APIView) -> bool:
        scope = view_scope(view)
        if scope is not None:
            check_scope(request, scope)
        return True


def _write_headers(response: HttpResponse, usage: Usage) -> None:
    response["X-RateLimit-Limit"] = str(usage.limit)
    response["X-RateLimit-Remaining"] = str(usage.remaining)
    response["X-RateLimit-Reset"] = str(usage.reset)
    if usage.exceeded:
        response["Retry-After"] = str(max(usage.reset, 1))


class RateLimitMiddleware:
    """Writes the X-RateLimit-* headers, and limits the password forms that are not DRF views."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        usage = getattr(request, USAGE_ATTR, None)
        if usage is not None:
            _write_headers(response, usage)
        return response

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponse],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        match = request.resolver_match
        if request.method != "POST" or match is None or match.view_name not in FORM_LOGIN_VIEWS:
            return None
        try:
            check_scope(request, "login")
        except errors.ApiError as exc:
            return problem_response(exc.status_code, exc.code, exc.message, headers=exc.headers)
        return None


def ratelimited_view(request: HttpRequest, exception: Exception) -> JsonResponse:
    """``RATELIMIT_VIEW``: the answer for django-ratelimit's own decorator, should a view use it."""
    return problem_response(429, errors.RateLimitExceeded.code, "rate limit exceeded", headers={"Retry-After": "60"})
