from collections.abc import Callable

from csp.middleware import CSPMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.cache import add_never_cache_headers

from config.parsers import nul_field

_FORM_BODIES = ("application/x-www-form-urlencoded", "multipart/form-data")
_JSON_NUL_MARKERS = (b"\x00", b"\\u0000")
_WRITES = ("POST", "PUT", "PATCH")
NUL_MESSAGE = "NUL characters are not allowed in requests."


class RejectNulMiddleware:
    """Refuse requests carrying NUL characters, which PostgreSQL cannot store or compare.

    Without this, a NUL in a search box or a name field reaches the database as a 500. Query
    strings and JSON bodies are scanned here for every request. Form and multipart bodies are read
    as fields: a page's (in `process_view`, once the login is checked) is refused with a 400
    naming the field; the API's by its parsers (`config.parsers`, which DRF's session CSRF check
    reads through too), as a 400 naming the field, only in views that take such bodies.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._has_nul(request):
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": NUL_MESSAGE}, status=400)
            return HttpResponseBadRequest(NUL_MESSAGE)
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if (
            request.method != "POST"
            or request.content_type not in _FORM_BODIES
            or request.path_info.startswith("/api/")
        ):
            return None
        # A malformed multipart body raises here as it would in the CSRF check: Django's 400.
        field = nul_field(request.POST, request.FILES)
        if field is None:
            return None
        return HttpResponseBadRequest(f"{NUL_MESSAGE} The field '{field}' holds one.")

    @staticmethod
    def _has_nul(request: HttpRequest) -> bool:
        query = request.META.get("QUERY_STRING", "")
        if "%00" in query or "\x00" in query or "\x00" in request.path:
            return True
        if request.content_type == "application/json" and request.method in _WRITES:
            return any(marker in request.body for marker in _JSON_NUL_MARKERS)
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
