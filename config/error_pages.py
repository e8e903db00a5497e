"""The 403, 404 and 500 answers (handler403/404/500) and a refused form's security token
(CSRF_FAILURE_VIEW): JSON under /api/, where clients read JSON; elsewhere the site's own pages
(templates/403.html, 404.html, 500.html), with the navigation and a way back."""

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.views.defaults import page_not_found
from django.views.defaults import permission_denied as django_permission_denied

logger = logging.getLogger(__name__)

# What a server error shows when even the site's page cannot be drawn (a template error, a
# database that is down while the page reads the user): plain HTML with no template.
BARE_500 = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Server error</title></head>"
    "<body><main><h1>Server error</h1><p>Something went wrong on our side; it has been logged. "
    "<a href='/'>Back to the start page</a></p></main></body></html>"
)


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            {"detail": str(exception) or "You do not have permission to do this."}, status=403
        )
    return django_permission_denied(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """The site's page, drawn with the request (so the navigation shows); plain HTML if drawing it
    fails too."""
    if _is_api(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    try:
        return render(request, "500.html", status=500)
    except Exception:
        logger.exception("the 500 page could not be drawn")
        return HttpResponseServerError(BARE_500)


CSRF_MESSAGE = (
    "This form could not be sent: its security token did not match (the page was open for a long "
    "time, you signed in or out in another tab, or your browser blocks cookies for this site). Go "
    "back, reload the page and send the form again."
)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form refused for its CSRF token: the site's 403 page saying what happened and what to do
    (Django's own answer is a bare page for developers)."""
    logger.warning("CSRF refused %s %s: %s", request.method, request.path_info, reason)
    if _is_api(request):
        return JsonResponse({"detail": f"CSRF failed: {reason}"}, status=403)
    return render(request, "403.html", {"exception": CSRF_MESSAGE, "csrf": True}, status=403)
