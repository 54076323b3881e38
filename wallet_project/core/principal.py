"""Who a request acts for, when the account behind its token has not been read yet.

The transfer endpoint authenticates from the signed token alone (no query): the caller is a
``Principal``, not a ``User``, and its account check (the account exists, is active, and the token
is not revoked) is an explicit step that runs later, either under the wallet lock of the transfer
(where it costs no round trip) or by ``principal_check`` for answers that never reach the lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from rest_framework.exceptions import AuthenticationFailed


@dataclass(frozen=True)
class Principal:
    """The caller as a signed token names them; ``verified`` says whether the account was read since.

    Quacks enough like a user for DRF (``is_authenticated``, ``pk``) and the rate limiter; it is never
    saved and has no permissions of its own (``is_staff`` is what the token says, false by default).
    """

    id: int
    username: str
    token_version: int
    is_staff: bool = False
    verified: bool = False

    is_authenticated = True
    is_anonymous = False
    is_active = True  # as far as the token knows: the account check says otherwise

    @property
    def pk(self) -> int:
        return self.id

    def __str__(self) -> str:
        return self.username


def unverified_principal(user: object) -> Principal | None:
    """The request's principal when its account check is still to come, else None (a checked user)."""
    return user if isinstance(user, Principal) and not user.verified else None


def principal_account_valid(principal: Principal) -> bool:
    """The account check on its own (one query): the account exists, is active, and the token is current."""
    return (
        get_user_model()
        ._default_manager.filter(pk=principal.id, is_active=True, token_version=principal.token_version)
        .exists()
    )


def principal_check(user: object) -> None:
    """Run a principal's account check now (a query of its own): for answers that never reach the lock.

    Raises ``AuthenticationFailed`` (401) when the account is gone or inactive or the token revoked;
    does nothing for a user whose account was checked when the request was authenticated.
    """
    principal = unverified_principal(user)
    if principal is not None and not principal_account_valid(principal):
        raise AuthenticationFailed("user not found or inactive, or token revoked", code="token_revoked")
