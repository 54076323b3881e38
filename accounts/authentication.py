"""JWT authentication that answers 401 (never 500) and honours per-user token revocation."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework_simplejwt.authentication import JWTAuthentication as BaseJWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import aware_utcnow

from accounts.models import User
from wallet_project.core.principal import Principal

if TYPE_CHECKING:  # annotations only: DRF imports this module while rest_framework.views loads
    from django.contrib.auth.base_user import AbstractBaseUser
    from rest_framework.request import Request
    from rest_framework_simplejwt.tokens import Token

TOKEN_VERSION_CLAIM = "ver"  # noqa: S105 - a claim name, not a secret


def token_revoked(user: User, token: Token) -> bool:
    """True when the token predates the user's last logout-everywhere or password change."""
    return token.get(TOKEN_VERSION_CLAIM, 0) != user.token_version


# simplejwt turns time claims into datetimes without a guard: an absurd `exp` raises these, not TokenError.
CLAIM_CONVERSION_ERRORS = (OverflowError, OSError, ValueError, TypeError)


class VerifiedTokens:
    """Access tokens whose signature this process has checked, by their exact text (bounded, LRU).

    Checking a token (PyJWT's base64 and HMAC work) was a measurable share of a transfer's CPU
    (docs/benchmarks.md), and a client sends
    the same access token until it expires. The claims of a given string never change, so a string
    seen valid needs only its expiry checked again. Revocation does not depend on this: the ``ver``
    claim is compared with the account on every request (by the user query, or under the wallet
    lock). Access tokens have no blacklist in simplejwt, so nothing else is skipped.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._tokens: OrderedDict[bytes, Token] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, raw: bytes) -> Token | None:
        with self._lock:
            token = self._tokens.get(raw)
            if token is not None:
                self._tokens.move_to_end(raw)
            return token

    def put(self, raw: bytes, token: Token) -> None:
        with self._lock:
            self._tokens[raw] = token
            if len(self._tokens) > self._size:
                self._tokens.popitem(last=False)

    def discard(self, raw: bytes) -> None:
        with self._lock:
            self._tokens.pop(raw, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


verified_tokens = VerifiedTokens()


@receiver(setting_changed)
def _forget_tokens_on_new_keys(setting: str, **kwargs: object) -> None:
    if setting in {"SIMPLE_JWT", "SECRET_KEY"}:
        verified_tokens.clear()


class JWTAuthentication(BaseJWTAuthentication):
    """simplejwt's authentication, answering 401 (never 500) and honouring revocation.

    A view with ``defer_account_check = True`` (the transfer endpoint) gets a ``Principal`` built from
    the signed token without a query of its own: the account check (exists, active, token not revoked)
    is not skipped but moved into the statement that locks the wallets (the ledger's account step).
    Requests that may replay a stored outcome (an ``Idempotency-Key``) are checked up front, since a
    replay never reaches the lock; a refusal that comes before the lock runs the check first
    (``principal_check``), so a revoked token learns nothing from the body.
    """

    # simplejwt types the user as AuthUser, a TypeVar that only its return types mention (no override
    # can satisfy it): these two overrides say what they return, a User (or, deferred, a Principal).
    def authenticate(  # type: ignore[override]
        self, request: Request
    ) -> tuple[AbstractBaseUser | Principal, Token] | None:
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if not getattr(view, "defer_account_check", False) or request.headers.get("Idempotency-Key") is not None:
            return super().authenticate(request)
        header = self.get_header(request)
        raw_token = self.get_raw_token(header) if header is not None else None
        if raw_token is None:
            return None
        token = self.get_validated_token(raw_token)
        principal = Principal(
            id=self.claimed_user_id(token),
            username=str(token.get("username", "")),
            token_version=token.get(TOKEN_VERSION_CLAIM, 0),
        )
        return principal, token

    def get_validated_token(self, raw_token: bytes) -> Token:
        key = bytes(raw_token) if not isinstance(raw_token, str) else raw_token.encode()
        token = verified_tokens.get(key)
        if token is not None:
            try:
                token.check_exp(current_time=aware_utcnow())  # (not the time it was first checked)
                return token
            except (TokenError, *CLAIM_CONVERSION_ERRORS):
                verified_tokens.discard(key)  # expired since: the full check below answers as it should
        try:
            token = super().get_validated_token(raw_token)
        except CLAIM_CONVERSION_ERRORS as exc:
            raise InvalidToken("token is invalid") from exc
        verified_tokens.put(key, token)
        return token

    @staticmethod
    def claimed_user_id(validated_token: Token) -> int:
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidToken("token contained no recognizable user identification") from exc
        if isinstance(user_id, str) and user_id.isascii() and user_id.isdigit() and len(user_id) < 19:
            user_id = int(user_id)
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise InvalidToken("token contained no recognizable user identification")
        return user_id

    def get_user(self, validated_token: Token) -> User:  # type: ignore[override]  # (see authenticate)
        user_id = self.claimed_user_id(validated_token)
        user = (
            User.objects.filter(pk=user_id)
            .only("id", "username", "is_active", "is_staff", "is_superuser", "token_version")
            .first()
        )
        if user is None or not user.is_active:
            raise AuthenticationFailed("user not found or inactive", code="user_not_found")
        if token_revoked(user, validated_token):
            raise AuthenticationFailed("token has been revoked", code="token_revoked")
        return user
