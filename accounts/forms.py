from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm, UsernameField
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from accounts import throttling

TOO_MANY = "Too many failed logins. Please wait a few minutes and try again."


class NormalizedUsernameField(UsernameField):
    """The username as every login door authenticates and counts it (`normalize_username`)."""

    def to_python(self, value):
        if value in self.empty_values:
            return ""
        return throttling.normalize_username(value)


class ThrottledAuthenticationForm(AuthenticationForm):
    """Django's login form, refusing for a while after repeated failures."""

    username = NormalizedUsernameField(widget=forms.TextInput(attrs={"autofocus": True}))

    def clean(self):
        username = self.cleaned_data.get("username")
        if not username or not self.cleaned_data.get("password"):
            return super().clean()  # nothing was tried: the fields' own errors say what is missing
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


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """Django's password change form; its check of the old password counts like a login."""

    def __init__(self, user, *args, request: HttpRequest, **kwargs) -> None:
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self) -> str:
        username = self.user.get_username()
        if throttling.login_blocked(self.request, username):
            raise ValidationError(TOO_MANY, code="throttled")
        try:
            old_password = super().clean_old_password()
        except ValidationError:
            throttling.login_failed(self.request, username)
            raise
        throttling.login_succeeded(self.request, username)
        return old_password


class ThrottledAdminPasswordChangeForm(ThrottledPasswordChangeForm):
    """The Django admin's password change form (as `admin.forms.AdminPasswordChangeForm`)."""

    required_css_class = "required"
