"""The deferred account check of the transfer endpoint, as the views below accounts see it.

``accounts.authentication.JWTAuthentication`` builds the user of a ``defer_account_check`` view from
the signed token alone and leaves the token version still to be checked on it; the ledger checks it
in the statement that locks the wallets. These helpers read it (and run the check early, for answers
that never reach the lock) through ``get_user_model()``: the ledger sits below accounts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from rest_framework_simplejwt.exceptions import AuthenticationFailed

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

# The attribute JWTAuthentication sets on a user whose account check is deferred.
UNVERIFIED_TOKEN_VERSION = "unverified_token_version"  # noqa: S105 - an attribute name, not a secret


def unverified_token_version(user: AbstractBaseUser | AnonymousUser) -> int | None:
    """The token version still to be checked for a user authenticated with a deferred check, else None."""
    return getattr(user, UNVERIFIED_TOKEN_VERSION, None)


def check_deferred_account(user: AbstractBaseUser | AnonymousUser) -> None:
    """Run a deferred account check now (a query of its own): for answers that never reach the lock.

    Raises ``AuthenticationFailed`` (401) when the account is gone or inactive or the token revoked;
    does nothing for a user whose account was checked by ``authenticate`` already.
    """
    version = unverified_token_version(user)
    user_model = get_user_model()
    if version is None or not isinstance(user, user_model):
        return
    if not user_model.objects.filter(pk=user.pk, is_active=True, token_version=version).exists():
        raise AuthenticationFailed("user not found or inactive, or token revoked", code="token_revoked")
    setattr(user, UNVERIFIED_TOKEN_VERSION, None)
