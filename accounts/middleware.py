from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

# Paths that answer anonymous users. The API answers 401/403 itself (DRF), rather than redirecting.
PUBLIC_PREFIXES = ("/accounts/login/", "/static/", "/api/", "/healthz")


class LoginRequiredMiddleware:
    """Every page needs a logged-in user; anonymous visitors are sent to the login page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if request.user.is_authenticated or path.startswith(PUBLIC_PREFIXES):
            return self.get_response(request)
        if path.startswith("/admin/"):
            return self.get_response(request)  # the Django admin has its own login page
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
