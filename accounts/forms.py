from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import throttling

TOO_MANY = "Too many failed logins. Please wait a few minutes and try again."


class ThrottledAuthenticationForm(AuthenticationForm):
    """Django's login form, refusing for a while after repeated failures."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        if throttling.login_blocked(self.request, username):
            raise ValidationError(TOO_MANY, code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError:
            throttling.login_failed(self.request, username)
            raise
        throttling.login_succeeded(self.request, username)
        return cleaned


class ThrottledAdminAuthenticationForm(ThrottledAuthenticationForm, AdminAuthenticationForm):
    """The Django admin's login, counted and refused like the others."""
