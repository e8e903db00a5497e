from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.defaults import page_not_found
from django.views.defaults import server_error as django_server_error

from accounts.permissions import is_admin


def home(request: HttpRequest) -> HttpResponse:
    """Admins land on the datasets; annotators on their campaigns."""
    return redirect("generation:dataset-list" if is_admin(request.user) else "annotation:home")


def profile(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/profile.html")


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404: JSON under /api/ (API clients read JSON, even for a URL that matches nothing)."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Server error."}, status=500)
    return django_server_error(request)
