from django.contrib import admin
from django.contrib.auth.views import PasswordChangeView
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from accounts.forms import ThrottledAdminAuthenticationForm, ThrottledAdminPasswordChangeForm

# Every door that takes a password is throttled, the Django admin's included.
admin.site.login_form = ThrottledAdminAuthenticationForm


class _AdminPasswordChangeView(PasswordChangeView):
    form_class = ThrottledAdminPasswordChangeForm

    def get_form_kwargs(self) -> dict:
        return {**super().get_form_kwargs(), "request": self.request}


def _admin_password_change(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """`AdminSite.password_change` with the throttled form (the admin site has no setting for it):
    the old password is checked there, so it counts like a login."""
    site = admin.site
    request.current_app = site.name
    return _AdminPasswordChangeView.as_view(
        success_url=reverse("admin:password_change_done", current_app=site.name),
        extra_context={**site.each_context(request), **(extra_context or {})},
    )(request)


# Read by `admin.site.urls`, which config/urls.py builds after every admin module is loaded.
admin.site.password_change = _admin_password_change
