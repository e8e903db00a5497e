"""Who may do what: admins are staff users; annotators are members of the `annotators` group."""

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import BasePermission

ANNOTATORS_GROUP = "annotators"


def is_admin(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class IsAdmin(BasePermission):
    """DRF permission for admin-only operations (datasets, endpoints, batches, exports...)."""

    message = "Only admins may do this."

    def has_permission(self, request, view) -> bool:
        return is_admin(request.user)


def admin_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For htmx pages: 403 for logged-in non-admins (the middleware handles anonymous users)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_admin(request.user):
            raise PermissionDenied("Only admins may open this page.")
        return view(request, *args, **kwargs)

    return wrapped
