from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from accounts.sessions import remember_session

        # Bookkeeping only: lets a deletion request end every session of the user.
        user_logged_in.connect(remember_session, dispatch_uid="accounts.remember_session")
