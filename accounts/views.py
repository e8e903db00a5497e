from django.contrib import messages
from django.contrib.auth.views import PasswordChangeView
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy

from accounts.forms import ThrottledPasswordChangeForm
from accounts.permissions import is_admin
from accounts.selectors import token_for


def home(request: HttpRequest) -> HttpResponse:
    """Admins land on the datasets; annotators on their campaigns."""
    return redirect("generation:dataset-list" if is_admin(request.user) else "annotation:home")


def profile(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/profile.html", {"token": token_for(user=request.user)})


class PasswordChange(PasswordChangeView):
    """Every signed-in user changes their own password; the old one is checked and counted like
    a login, the session stays signed in, and the API token is revoked (accounts/passwords.py)."""

    form_class = ThrottledPasswordChangeForm
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:profile")

    def get_form_kwargs(self) -> dict:
        return {**super().get_form_kwargs(), "request": self.request}

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(self.request, "Your password was changed.")
        return response


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
