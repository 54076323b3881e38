from transactions.management.commands._movement import MovementCommand
from transactions.services import withdrawal_create


class Command(MovementCommand):
    help = "Withdraw money from a user's wallet (recorded as a withdrawal transaction with audit rows)."
    verb = "withdrew"

    def service(self, **kwargs):
        return withdrawal_create(**kwargs)
