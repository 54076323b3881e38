"""JWT authentication that answers 401 (never 500) and honours per-user token revocation."""

from __future__ import annotations

from rest_framework_simplejwt.authentication import JWTAuthentication as BaseJWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings

from accounts.models import User

TOKEN_VERSION_CLAIM = "ver"  # noqa: S105 - a claim name, not a secret


def token_revoked(user: User, token) -> bool:
    """True when the token predates the user's last logout-everywhere or password change."""
    return token.get(TOKEN_VERSION_CLAIM, 0) != user.token_version


# simplejwt turns time claims into datetimes without a guard: an absurd `exp` raises these, not TokenError.
CLAIM_CONVERSION_ERRORS = (OverflowError, OSError, ValueError, TypeError)


class JWTAuthentication(BaseJWTAuthentication):
    """simplejwt's authentication, answering 401 (never 500) and honouring revocation.

    A view with ``defer_account_check = True`` (the transfer endpoint) gets a user built from the
    signed token without a query of its own: the account check (exists, active, token not revoked)
    is not skipped but moved into the statement that locks the wallets (see
    ``unverified_token_version``). Requests that may replay a stored outcome (an ``Idempotency-Key``)
    are checked up front, since a replay never reaches the lock.
    """

    def authenticate(self, request):
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if not getattr(view, "defer_account_check", False) or request.headers.get("Idempotency-Key") is not None:
            return super().authenticate(request)
        header = self.get_header(request)
        raw_token = self.get_raw_token(header) if header is not None else None
        if raw_token is None:
            return None
        token = self.get_validated_token(raw_token)
        user = User(id=self.claimed_user_id(token), username=str(token.get("username", "")), is_active=True)
        user.unverified_token_version = token.get(TOKEN_VERSION_CLAIM, 0)
        return user, token

    def get_validated_token(self, raw_token):  # type: ignore[override]
        try:
            return super().get_validated_token(raw_token)
        except CLAIM_CONVERSION_ERRORS as exc:
            raise InvalidToken("token is invalid") from exc

    @staticmethod
    def claimed_user_id(validated_token) -> int:
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidToken("token contained no recognizable user identification") from exc
        if isinstance(user_id, str) and user_id.isascii() and user_id.isdigit() and len(user_id) < 19:
            user_id = int(user_id)
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise InvalidToken("token contained no recognizable user identification")
        return user_id

    def get_user(self, validated_token):  # type: ignore[override]
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


def unverified_token_version(user) -> int | None:
    """The token version still to be checked for a user authenticated with a deferred check, else None."""
    return getattr(user, "unverified_token_version", None)
