from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission

from . import exceptions as errors

if TYPE_CHECKING:  # annotations only
    from django.contrib.auth.models import AnonymousUser
    from rest_framework.request import Request
    from rest_framework.views import APIView

    from accounts.models import User


def ensure_owner_or_staff(user: User | AnonymousUser, user_id: int) -> None:
    """Users reach only their own resources; staff reach any."""
    if user.pk != user_id and not user.is_staff:
        raise errors.Forbidden("forbidden: you can only access your own resources")


class IsStaff(BasePermission):
    message = "forbidden: staff only"

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
