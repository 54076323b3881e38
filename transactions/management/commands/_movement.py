"""Shared argument handling for the deposit and withdraw commands."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.management.base import BaseCommand, CommandError

from currencies.money import parse_amount
from currencies.selectors import currency_get
from transactions.events import transaction_document
from wallet_project.core import errors
from wallet_project.core.permissions import MOVEMENT_PERMISSION, can_move_money

User = get_user_model()  # the ledger sits below accounts


class MovementCommand(BaseCommand):
    verb = ""

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("amount", help='exact decimal, e.g. "250.5"')
        parser.add_argument("--currency", default=None, help="currency code (default: the default currency)")
        parser.add_argument("--memo", default="")
        parser.add_argument("--staff", default=None, help="username of the staff member recorded as creator")

    @staticmethod
    def _staff(username: str) -> AbstractUser:
        # Whoever runs the command has shell access; the name recorded as creator must still be
        # someone allowed to move money, as in the API and the admin.
        staff = User.objects.filter(username__iexact=username).first()
        if staff is None or not can_move_money(staff):
            raise CommandError(f"--staff {username}: not an active staff member with {MOVEMENT_PERMISSION}")
        return staff

    def service(self, **kwargs):
        raise NotImplementedError

    def handle(self, *args, **options):
        try:
            user = User.objects.get(username__iexact=options["username"])
            currency = currency_get(code=options["currency"])
            amount: Decimal = parse_amount(options["amount"])
            staff = self._staff(options["staff"]) if options["staff"] else None
            tx = self.service(
                user_id=user.pk,
                currency=currency,
                amount=amount,
                memo=options["memo"],
                created_by_id=staff.pk if staff else None,
            )
        except User.DoesNotExist as exc:
            raise CommandError(f"no such user: {options['username']}") from exc
        except errors.ApiError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        document = transaction_document(tx, currency_code=currency.code)
        self.stdout.write(f"{self.verb} {document['amount']} {currency.code} for {user.username}: {document['hash']}")
