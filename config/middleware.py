from collections.abc import Callable

from csp.middleware import CSPMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.cache import add_never_cache_headers

# Bodies worth scanning: small text ones. Uploads (multipart) are checked by their importers.
_TEXT_BODIES = ("application/json", "application/x-www-form-urlencoded")
_NUL_MARKERS = (b"\x00", b"%00", b"\\u0000")


class RejectNulMiddleware:
    """Refuse requests carrying NUL characters, which PostgreSQL cannot store or compare.

    Without this, a NUL in a search box or a name field reaches the database as a 500.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._has_nul(request):
            message = "NUL characters are not allowed in requests."
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": message}, status=400)
            return HttpResponseBadRequest(message)
        return self.get_response(request)

    @staticmethod
    def _has_nul(request: HttpRequest) -> bool:
        query = request.META.get("QUERY_STRING", "")
        if "%00" in query or "\x00" in query or "\x00" in request.path:
            return True
        if request.content_type in _TEXT_BODIES and request.method in ("POST", "PUT", "PATCH"):
            return any(marker in request.body for marker in _NUL_MARKERS)
        return False


class NoStoreMiddleware:
    """Send every API answer and every page of a logged-in user with `Cache-Control: no-store`.

    What they show is someone's data (media files included): no browser cache on a shared computer
    and no proxy should keep it. A view that sets its own Cache-Control is left alone.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.has_header("Cache-Control"):
            return response
        user = getattr(request, "user", None)
        if request.path_info.startswith("/api/") or (user is not None and user.is_authenticated):
            add_never_cache_headers(response)
        return response


class PageCSPMiddleware(CSPMiddleware):
    """django-csp's Content-Security-Policy on every page, but not on JSON answers.

    A policy governs what a document may load; a JSON answer loads nothing. django-csp builds the
    policy anew for every response (copies of the settings, twice), which cost the annotators'
    two API calls about a tenth of their time (measured with benchmarks/bench_annotation.py).
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        return super().process_response(request, response)
