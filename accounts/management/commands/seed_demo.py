"""Demo data for local use: users with balances, and a staff account for the admin.

Idempotent: users that exist are left as they are, and each demo balance is deposited once (a
``deposit`` transaction with the memo below), so running it again changes nothing. Balances go
through ``deposit_create``, so the supply is accounted for and ``reconcile`` stays clean.

Only accounts this command made are reused: it puts them in the ``SEED_GROUP`` group, which sign-up
cannot. If a demo name (or the staff name) belongs to anyone else, say someone who signed up as
``alice`` or ``admin`` first, it refuses before writing anything: otherwise it would credit their
account, or record the demo deposits as made by a user who is not staff.
"""

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import user_create
from currencies.models import Currency
from currencies.money import format_amount
from transactions.models import Transaction
from transactions.services import deposit_create
from wallet_project.core import errors
from wallet_project.core.permissions import MOVEMENT_PERMISSION, can_move_money
from wallets.models import Wallet
from wallets.services import wallet_open

DEMO_PASSWORD = "demo-wallet-pass"  # noqa: S105 - printed on purpose: local demo accounts only
STAFF_USERNAME = "admin"
SEED_MEMO = "seed_demo"
SEED_GROUP = "seed_demo accounts"  # membership marks the accounts this command made
DEMO_USERS = {
    "alice": {"USDT": Decimal("1000"), "BTC": Decimal("0.5")},
    "bob": {"USDT": Decimal("500"), "ETH": Decimal("2")},
    "carol": {"USDT": Decimal("250")},
}


class Command(BaseCommand):
    help = "Create demo users (alice, bob, carol) with balances and a staff user 'admin'. Safe to run twice."

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEMO_PASSWORD, help="password for users created by this run")
        parser.add_argument(
            "--force", action="store_true", help="run outside local development too (accounts with a known password!)"
        )

    def handle(self, *args, password: str, force: bool, **options):
        # Keyed on the mode, not on DEBUG: DEBUG=true in production must not open this either.
        if not settings.LOCAL and not force:
            raise CommandError(
                "refusing to create accounts with a known password outside local development "
                "(DJANGO_ENV=local; or --force)"
            )
        self._refuse_foreign_accounts()
        staff = self._staff(password)
        for username, balances in DEMO_USERS.items():
            user = self._user(username, password)
            for code, amount in balances.items():
                self._balance(user, code, amount, staff)
        self.stdout.write(
            self.style.SUCCESS(
                f"Log in with any of {', '.join(DEMO_USERS)} (API: POST /auth/login) or '{STAFF_USERNAME}' "
                f"(/admin/); password for accounts created by this command: {password}"
            )
        )

    def _refuse_foreign_accounts(self) -> None:
        problems = []
        for name in (STAFF_USERNAME, *DEMO_USERS):
            for user in User.objects.filter(username__iexact=name):
                if not self._ours(user):
                    problems.append(f"{name} (exists as {user.username!r}, not made by seed_demo)")
                elif name == STAFF_USERNAME and not can_move_money(user):
                    problems.append(f"{name} (no longer active staff with {MOVEMENT_PERMISSION})")
        if problems:
            raise CommandError(
                "refusing to seed: demo names taken by accounts this command may not use: "
                + ", ".join(problems)
                + ". Nothing was written; remove or rename those accounts, or seed another database."
            )

    @staticmethod
    def _ours(user: User) -> bool:
        return user.groups.filter(name=SEED_GROUP).exists()

    @staticmethod
    def _mark(user: User) -> None:
        group, _ = Group.objects.get_or_create(name=SEED_GROUP)
        user.groups.add(group)

    def _staff(self, password: str) -> User:
        staff = User.objects.filter(username__iexact=STAFF_USERNAME).first()
        if staff is not None and not (self._ours(staff) and can_move_money(staff)):
            raise CommandError(f"{STAFF_USERNAME} was taken by someone else meanwhile; stopped")
        if staff is not None:
            self.stdout.write(f"staff user {staff.username}: exists, left unchanged")
            return staff
        staff = User.objects.create_superuser(
            username=STAFF_USERNAME, email=f"{STAFF_USERNAME}@example.com", password=password
        )
        self._mark(staff)
        self.stdout.write(f"staff user {staff.username}: created (superuser)")
        return staff

    def _user(self, username: str, password: str) -> User:
        user = User.objects.filter(username__iexact=username).first()
        if user is not None and not self._ours(user):  # registered since the check above
            raise CommandError(f"{username} was taken by someone else meanwhile; stopped")
        if user is not None:
            self.stdout.write(f"user {user.username}: exists, left unchanged")
            return user
        try:
            user = user_create(username=username, email=f"{username}@example.com", password=password)
        except errors.ApiError as exc:
            raise CommandError(f"cannot create {username}: {exc.message}") from exc
        self._mark(user)
        self.stdout.write(f"user {user.username}: created (id {user.pk})")
        return user

    def _balance(self, user: User, code: str, amount: Decimal, staff: User) -> None:
        currency = Currency.objects.filter(code=code, is_active=True).first()
        if currency is None:
            self.stdout.write(self.style.WARNING(f"  {code}: no such active currency, skipped"))
            return
        if not Wallet.objects.filter(user=user, currency=currency).exists():
            wallet_open(user_id=user.pk, currency=currency)
        seeded = Transaction.objects.filter(
            type=Transaction.Type.DEPOSIT, to_user=user, currency=currency, memo=SEED_MEMO
        ).exists()
        if seeded:
            self.stdout.write(f"  {code}: demo deposit already made")
            return
        tx = deposit_create(user_id=user.pk, currency=currency, amount=amount, memo=SEED_MEMO, created_by_id=staff.pk)
        balance = Wallet.objects.get(user=user, currency=currency).balance
        self.stdout.write(
            f"  {code}: deposited {format_amount(amount)} (tx {tx.hash[:16]}…), balance {format_amount(balance)}"
        )
