"""Demo data for local use: users with balances, a hold, a withdrawal request, and a staff account.

Idempotent: users that exist are left as they are, each demo balance is deposited once (a
``deposit`` transaction with the memo below), and the demo hold (alice for bob) and the demo
withdrawal request (carol's, pending for the admin's approval queue) are made once each (found again
by that memo, whatever became of them since), so running it again changes nothing. Everything goes
through the services (``deposit_create``, ``hold_create``, ``withdrawal_request_create``), so the
supply and the held amounts are accounted for and ``reconcile`` stays clean.

Only accounts this command made are reused: it puts them in the ``SEED_GROUP`` group, which sign-up
cannot. If a demo name (or the staff name) belongs to anyone else, say someone who signed up as
``alice`` or ``admin`` first, it refuses before writing anything: otherwise it would credit their
account, or record the demo deposits as made by a user who is not staff.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import user_create
from currencies.models import Currency
from currencies.money import format_amount
from holds.models import Hold, WithdrawalRequest
from holds.services import MAX_EXPIRES_IN, hold_create, withdrawal_request_create
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


@dataclass(frozen=True)
class DemoHold:
    payer: str
    payee: str
    currency: str
    amount: Decimal


@dataclass(frozen=True)
class DemoWithdrawal:
    user: str
    currency: str
    amount: Decimal
    address: str
    network: str


# alice reserves part of her USDT for bob (for the longest expiry a hold may have); carol asks to
# withdraw part of hers, which waits for staff in the admin.
DEMO_HOLD = DemoHold(payer="alice", payee="bob", currency="USDT", amount=Decimal("25"))
DEMO_WITHDRAWAL = DemoWithdrawal(
    user="carol", currency="USDT", amount=Decimal("40"), address="TDemoWithdrawalAddressForCarol0001", network="TRC20"
)


class Command(BaseCommand):
    help = (
        "Create demo users (alice, bob, carol) with balances, a hold and a pending withdrawal request, "
        "and a staff user 'admin'. Safe to run twice."
    )

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
        users = {}
        for username, balances in DEMO_USERS.items():
            users[username] = user = self._user(username, password)
            for code, amount in balances.items():
                self._balance(user, code, amount, staff)
        self._hold(users[DEMO_HOLD.payer], users[DEMO_HOLD.payee])
        self._withdrawal_request(users[DEMO_WITHDRAWAL.user])
        self.stdout.write(
            self.style.SUCCESS(
                f"Log in with any of {', '.join(DEMO_USERS)} (API: POST /auth/login) or '{STAFF_USERNAME}' "
                f"(/admin/, where the withdrawal request waits for approval); password for accounts created "
                f"by this command: {password}"
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
        currency = self._active_currency(code)
        if currency is None:
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

    def _active_currency(self, code: str) -> Currency | None:
        currency = Currency.objects.filter(code=code, is_active=True).first()
        if currency is None:
            self.stdout.write(self.style.WARNING(f"  {code}: no such active currency, skipped"))
        return currency

    def _hold(self, payer: User, payee: User) -> None:
        currency = self._active_currency(DEMO_HOLD.currency)
        if currency is None:
            return
        made = Hold.objects.filter(
            payer=payer, payee=payee, currency=currency, memo=SEED_MEMO, withdrawal_request__isnull=True
        ).first()
        if made is not None:
            self.stdout.write(f"hold {payer.username} for {payee.username}: demo hold already made (hold {made.pk})")
            return
        try:
            hold = hold_create(
                payer_id=payer.pk,
                payee_id=payee.pk,
                currency=currency,
                amount=DEMO_HOLD.amount,
                expires_in=MAX_EXPIRES_IN,
                memo=SEED_MEMO,
            )
        except errors.ApiError as exc:  # say alice spent her demo money meanwhile: the rest is still seeded
            self.stdout.write(self.style.WARNING(f"hold {payer.username} for {payee.username}: skipped: {exc.message}"))
            return
        self.stdout.write(
            f"hold {payer.username} for {payee.username}: {format_amount(hold.amount)} {currency.code} held "
            f"(hold {hold.pk}, expires {hold.expires_at:%Y-%m-%d})"
        )

    def _withdrawal_request(self, user: User) -> None:
        currency = self._active_currency(DEMO_WITHDRAWAL.currency)
        if currency is None:
            return
        made = WithdrawalRequest.objects.filter(user=user, currency=currency, memo=SEED_MEMO).first()
        if made is not None:
            self.stdout.write(
                f"withdrawal request of {user.username}: demo request already made (request {made.pk}, {made.status})"
            )
            return
        try:
            request = withdrawal_request_create(
                user_id=user.pk,
                currency=currency,
                amount=DEMO_WITHDRAWAL.amount,
                address=DEMO_WITHDRAWAL.address,
                network=DEMO_WITHDRAWAL.network,
                memo=SEED_MEMO,
            )
        except errors.ApiError as exc:
            self.stdout.write(self.style.WARNING(f"withdrawal request of {user.username}: skipped: {exc.message}"))
            return
        self.stdout.write(
            f"withdrawal request of {user.username}: {format_amount(request.amount)} {currency.code} to "
            f"{request.address}, pending (request {request.pk})"
        )
