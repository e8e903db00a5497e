from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from accounts.permissions import is_admin


def home(request: HttpRequest) -> HttpResponse:
    """Admins land on the datasets; annotators on their campaigns."""
    return redirect("generation:dataset-list" if is_admin(request.user) else "annotation:home")


def profile(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/profile.html")


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
