from transactions.management.commands._movement import MovementCommand
from transactions.services import deposit_create


class Command(MovementCommand):
    help = "Deposit money into a user's wallet (recorded as a deposit transaction with audit rows)."
    verb = "deposited"

    def service(self, **kwargs):
        return deposit_create(**kwargs)
