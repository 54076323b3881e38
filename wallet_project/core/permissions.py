from __future__ import annotations

from rest_framework.permissions import BasePermission

from . import exceptions as errors


def ensure_owner_or_staff(user, user_id: int) -> None:
    """Users reach only their own resources; staff reach any."""
    if user.pk != user_id and not user.is_staff:
        raise errors.Forbidden("forbidden: you can only access your own resources")


class IsStaff(BasePermission):
    message = "forbidden: staff only"

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
