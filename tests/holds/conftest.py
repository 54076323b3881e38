import pytest

from tests.ledger import flushable_append_only_tables


@pytest.fixture(scope="session", autouse=True)
def _flushable_append_only_tables():
    """Transactional tests here end with a flush, which the append-only triggers would reject."""
    with flushable_append_only_tables():
        yield


def grant_approvals(user):
    """Give a staff user the permission that approving or rejecting withdrawal requests needs."""
    from django.contrib.auth.models import Permission

    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="holds", codename="approve_withdrawalrequest")
    )
    return type(user).objects.get(pk=user.pk)  # a fresh instance: the permission cache is per instance


@pytest.fixture
def approver_factory(db, user_factory):
    """Staff who may decide withdrawal requests (and move money: an operator has both)."""
    from tests.conftest import grant_movements

    return lambda **kwargs: grant_approvals(grant_movements(user_factory(is_staff=True, **kwargs)))
