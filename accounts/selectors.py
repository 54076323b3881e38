from __future__ import annotations

from accounts.models import User
from wallet_project.core import errors
from wallets.selectors import wallet_documents, wallet_list


def user_get_by_username(*, username: str, not_found: type[errors.ApiError] = errors.UserNotFound) -> User:
    user = User.objects.filter(username__iexact=username.strip(), is_active=True).only("id", "username").first()
    if user is None:
        raise not_found()
    return user


def user_document(user: User) -> dict:
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "created_at": user.date_joined.isoformat().replace("+00:00", "Z"),
        "wallets": wallet_documents(wallet_list(user_id=user.pk)),
    }
