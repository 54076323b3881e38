from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission

from . import errors

# Staff status opens the ops console; moving money for others takes this permission on top, on
# every path (API, admin actions, the commands that name a staff member).
MOVEMENT_PERMISSION = "transactions.add_transaction"

if TYPE_CHECKING:  # annotations only
    from django.contrib.auth.models import AbstractUser, AnonymousUser
    from rest_framework.request import Request
    from rest_framework.views import APIView


def ensure_owner_or_staff(user: AbstractUser | AnonymousUser, user_id: int) -> None:
    """Users reach only their own resources; staff reach any."""
    if user.pk != user_id and not user.is_staff:
        raise errors.Forbidden("forbidden: you can only access your own resources")


def can_move_money(user: AbstractUser | AnonymousUser | None) -> bool:
    """Active staff holding ``MOVEMENT_PERMISSION`` (superusers hold every permission)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(MOVEMENT_PERMISSION)
    )


class CanMoveMoney(BasePermission):
    message = f"forbidden: needs staff status and the {MOVEMENT_PERMISSION} permission"

    def has_permission(self, request: Request, view: APIView) -> bool:
        return can_move_money(request.user)
