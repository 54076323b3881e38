from django.apps import AppConfig


class HoldsConfig(AppConfig):
    name = "holds"
    verbose_name = "Money in motion: holds and withdrawal requests"

    def ready(self) -> None:
        # A spend that finds too little available releases the wallet's expired holds first (under the
        # wallet lock it already holds): expiry is enforced whether or not a sweeper has run.
        from holds.selectors import expired_held_by_wallet
        from holds.services import holds_release_expired
        from transactions.services import register_expired_hold_releaser
        from wallets.selectors import register_expired_held_reader

        register_expired_hold_releaser(holds_release_expired)
        # And a wallet shows that money as available already, not as held.
        register_expired_held_reader(expired_held_by_wallet)
