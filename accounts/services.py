"""Writes for users and their tokens."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.authentication import CLAIM_CONVERSION_ERRORS, TOKEN_VERSION_CLAIM
from accounts.models import User
from currencies.models import Currency
from currencies.money import parse_amount
from transactions.models import Transaction
from transactions.services import movement_create, run_in_transaction
from wallet_project.core import errors
from wallets.models import Wallet


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    user: User
    expires_in: int


def signup_grants() -> list[tuple[str, str]]:
    """Parse ``SIGNUP_GRANT`` ("USDT:1000,BTC:0.01") into (code, amount) pairs."""
    grants = []
    for part in filter(None, (p.strip() for p in settings.SIGNUP_GRANT.split(","))):
        code, _, amount = part.partition(":")
        grants.append((code.strip().upper(), amount.strip()))
    return grants


def user_create(*, username: str, email: str, password: str) -> User:
    """Create a user, a wallet in each active default currency and the sign-up grant, atomically."""
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise errors.InvalidRequest(exc.messages[0], errors={"password": list(exc.messages)}) from exc
    # Hash before opening the transaction: Argon2 is deliberately slow.
    candidate.password = make_password(password)

    def create() -> User:
        if User.objects.filter(Q(username__iexact=username) | Q(email__iexact=email)).exists():
            raise errors.UserAlreadyExists()
        candidate.save()
        currencies = list(Currency.objects.filter(is_active=True, is_default=True))
        Wallet.objects.bulk_create([Wallet(user=candidate, currency=c) for c in currencies])
        by_code = {c.code: c for c in currencies}
        for code, raw_amount in signup_grants():
            currency = by_code.get(code)
            if currency is None:
                continue
            movement_create(
                type=Transaction.Type.DEPOSIT,
                user_id=candidate.pk,
                currency=currency,
                amount=parse_amount(raw_amount),
                memo="sign-up grant",
                composed=True,  # one transaction with the account: no user without the grant
            )
        return candidate

    try:
        return run_in_transaction(create)
    except IntegrityError as exc:  # a concurrent sign-up won the race for the name or address
        raise errors.UserAlreadyExists() from exc


def _issue_tokens(user: User) -> TokenPair:
    refresh = RefreshToken.for_user(user)
    refresh["user_id"] = user.pk  # the seed's claim is a number; simplejwt writes a string
    refresh["username"] = user.username
    refresh[TOKEN_VERSION_CLAIM] = user.token_version
    access = refresh.access_token
    access["nbf"] = access["iat"]
    lifetime = int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds())
    return TokenPair(access=str(access), refresh=str(refresh), user=user, expires_in=lifetime)


def user_login(*, username: str, password: str) -> TokenPair:
    """Same answer and the same Argon2 work for an unknown user and a wrong password."""
    user = authenticate(username=username, password=password)
    if user is None:
        raise errors.InvalidCredentials()
    return _issue_tokens(user)


def token_refresh(*, refresh: str) -> TokenPair:
    """Rotate a refresh token: exactly one of many concurrent refreshes of the same token succeeds."""
    try:
        token = RefreshToken(refresh, verify=True)  # type: ignore[arg-type]  # simplejwt#787: typed as Token
    except (TokenError, *CLAIM_CONVERSION_ERRORS) as exc:
        raise errors.Unauthorized("refresh token is invalid or expired") from exc

    def rotate() -> TokenPair:
        # The row lock serializes concurrent rotations of one token; the loser sees it blacklisted.
        outstanding = OutstandingToken.objects.select_for_update().filter(jti=token["jti"]).first()
        if outstanding is None or BlacklistedToken.objects.filter(token=outstanding).exists():
            raise errors.Unauthorized("refresh token is invalid or expired")
        user = User.objects.filter(pk=token.get("user_id"), is_active=True).first()
        if user is None or token.get(TOKEN_VERSION_CLAIM, 0) != user.token_version:
            raise errors.Unauthorized("refresh token is invalid or expired")
        BlacklistedToken.objects.create(token=outstanding)
        return _issue_tokens(user)

    return run_in_transaction(rotate)


def token_logout(*, user: User, refresh: str | None, everywhere: bool = False) -> None:
    """Blacklist one refresh token, or revoke every token of the user (access tokens included)."""
    if everywhere:
        user_revoke_tokens(user=user)
        return
    try:
        token = RefreshToken(refresh or "", verify=True)  # type: ignore[arg-type]  # simplejwt#787
    except (TokenError, *CLAIM_CONVERSION_ERRORS) as exc:
        raise errors.Unauthorized("refresh token is invalid or expired") from exc
    if token.get("user_id") != user.pk:
        raise errors.Forbidden("forbidden: refresh token belongs to another user")
    with transaction.atomic(durable=True):
        outstanding = OutstandingToken.objects.filter(jti=token["jti"]).first()
        if outstanding is not None:
            BlacklistedToken.objects.get_or_create(token=outstanding)


def _revoke_tokens(user: User) -> None:
    User.objects.filter(pk=user.pk).update(token_version=F("token_version") + 1)
    pending = OutstandingToken.objects.filter(user_id=user.pk, blacklistedtoken__isnull=True)
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=t) for t in pending], ignore_conflicts=True)


def user_revoke_tokens(*, user: User) -> None:
    """Logout everywhere: every access and refresh token issued so far stops working."""
    with transaction.atomic(durable=True):
        _revoke_tokens(user)
    user.refresh_from_db(fields=["token_version"])


def user_change_password(*, user: User, current_password: str, new_password: str) -> None:
    if not user.check_password(current_password):
        raise errors.InvalidCredentials("current password is incorrect")
    try:
        validate_password(new_password, user=user)
    except DjangoValidationError as exc:
        raise errors.InvalidRequest(exc.messages[0], errors={"new_password": list(exc.messages)}) from exc
    user.set_password(new_password)
    with transaction.atomic(durable=True):
        user.save(update_fields=["password"])
        _revoke_tokens(user)
    user.refresh_from_db(fields=["token_version"])
