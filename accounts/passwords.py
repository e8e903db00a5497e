"""A new password revokes the account's API token, however it was set.

Django calls `password_changed(password, user)` on each entry of AUTH_PASSWORD_VALIDATORS whenever
a user saved after `set_password()`: the password change page, the Django admin's forms,
`manage.py changepassword`, the account services. Hooking there, rather than in each of those
places, is what makes the rule hold for every way a password changes.
"""

from accounts.services import token_revoke


class RevokeTokensOnPasswordChange:
    """Listed in AUTH_PASSWORD_VALIDATORS; it refuses no password."""

    def validate(self, password: str, user=None) -> None:
        return None

    def password_changed(self, password: str, user=None) -> None:
        if user is not None and user.pk is not None:
            token_revoke(user=user)

    def get_help_text(self) -> str:
        return "A new password also revokes the account's API token."
